from coder import Coder


def test_small_model_codes_something(small_coder: Coder):
    r = small_coder.code("nurse")
    assert r.status in {"auto", "refer"}
    assert len(r.code) == 4
