"""`coder learn` with CliRunner: import a team's coded file, list, forget, export; one-line errors."""

from __future__ import annotations

import copy
import csv

import pytest
from click.testing import CliRunner

from coder import Coder
from coder.cli import cli
from coder.decisions import DecisionStore
from coder.decisions_commands import learn


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(learn, list(args), env=env)


@pytest.fixture
def team_file(tmp_path):
    path = tmp_path / "team.csv"
    path.write_text(
        "id,job_title,industry,what_they_do,soc2000\n"
        "1,sparky,building site,wires houses,5241\n"
        "2,Sparky,building site,wires houses,5241\n"
        "3,bar manager,pub,runs the bar,1224\n"
        "4,bar manager,pub,runs the bar,1221\n"
        "5,chippy,,makes kitchens,5315\n"
        "6,,,,3211\n"
        "7,nurse,hospital,,99999\n", encoding="utf-8")
    return path


def learn_file(path, store, *extra: str):
    return run(str(path), "--column", "job_title", "--code-column", "soc2000", "--industry-column", "industry",
               "--description-column", "what_they_do", "--store", str(store), "--who", "team", *extra)


def test_learn_a_file_reports_what_it_did(team_file, tmp_path):
    store = tmp_path / "d.sqlite"
    result = learn_file(team_file, store)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "7 rows read, 5 imported as soc2000 decisions, 1 duplicates" in out
    assert "1 conflicts" in out and "'bar manager' [industry: pub] [does: runs the bar]" in out
    assert "no majority" in out
    assert "skipped 1 rows: no title" in out and "skipped 1 rows: not a soc2000 unit group (first: row 7, '99999')" in out
    assert DecisionStore(store).count() == 5
    again = learn_file(team_file, store)
    assert again.exit_code == 0 and "nothing imported" in again.output
    assert DecisionStore(store).count() == 5


def test_learned_answers_come_back_learned(team_file, tmp_path, small_coder):
    store = tmp_path / "d.sqlite"
    assert learn_file(team_file, store).exit_code == 0
    coder = Coder(copy.deepcopy(small_coder.model), decisions=DecisionStore(store))
    result = coder.code("SPARKY", "Building site", "wires houses")
    assert (result.code, result.method, result.status) == ("5241", "learned", "auto")
    assert "team" in result.matched_entry and "imported" in result.matched_entry
    assert coder.code("bar manager", "pub", "runs the bar").status == "refer"  # 1 vote each


def test_list_conflicts_forget_and_export(team_file, tmp_path):
    store = tmp_path / "d.sqlite"
    learn_file(team_file, store)
    listed = run("--list", "--store", str(store))
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:4] == ["id", "when", "(UTC)", "who"]
    assert len(lines) == 6 and "'chippy' [does: makes kitchens]" in lines[-1]
    assert "5 soc2000 decisions" in listed.stderr
    newest = run("--list", "--limit", "2", "--store", str(store))
    assert len(newest.stdout.splitlines()) == 3 and "2 of 5" in newest.stderr

    conflicts = run("--conflicts", "--store", str(store))
    assert conflicts.exit_code == 0 and "1221 x1, 1224 x1" in conflicts.stdout

    forgot = run("--forget", "4", "--store", str(store))
    assert forgot.exit_code == 0 and "forgot decision 4: 'bar manager'" in forgot.output
    assert "no conflicting" in run("--conflicts", "--store", str(store)).output
    missing = run("--forget", "4", "--store", str(store))
    assert missing.exit_code == 2 and "no decision with id 4" in missing.output
    assert len(missing.output.strip().splitlines()) == 1 and "Traceback" not in missing.output

    out = tmp_path / "out.csv"
    exported = run("--export", str(out), "--store", str(store))
    assert exported.exit_code == 0 and "wrote 4 soc2000 decisions" in exported.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["title"] for r in rows] == ["sparky", "Sparky", "bar manager", "chippy"]
    # The export can be learned again (into another store).
    back = run(str(out), "--column", "title", "--code-column", "code", "--industry-column", "industry",
               "--description-column", "description", "--store", str(tmp_path / "other.sqlite"))
    assert back.exit_code == 0 and "4 imported" in back.output


def test_the_store_comes_from_the_environment(team_file, tmp_path):
    store = tmp_path / "env.sqlite"
    result = run(str(team_file), "--column", "job_title", "--code-column", "soc2000", env={"CODER_STORE": str(store)})
    assert result.exit_code == 0 and f"store: {store}" in result.output
    assert DecisionStore(store).count() == 5


@pytest.mark.parametrize("args, message", [
    ([], "give a FILE of coded answers"),
    (["FILE"], "name the columns"),
    (["FILE", "--column", "job_title"], "name the columns"),
    (["FILE", "--column", "title", "--code-column", "soc2000"], "no column 'title'"),
    (["FILE", "--list"], "cannot be used together"),
    (["--list", "--column", "x"], "go with a FILE"),
    (["--export", "out.xlsx"], "exported as CSV"),
    (["nope.csv", "--column", "a", "--code-column", "b"], "no such file"),
    (["FILE", "--column", "job_title", "--code-column", "soc2000", "--scheme", "soc1066"],
     "unknown classification scheme"),
    (["--limit", "3", "--export", "x.csv"], "--limit goes with --list"),
])
def test_user_errors_are_one_line(team_file, tmp_path, args, message):
    args = [str(team_file) if a == "FILE" else str(tmp_path / a) if a.startswith("out.") else a for a in args]
    result = run(*args, "--store", str(tmp_path / "d.sqlite"))
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_store_path_that_is_a_folder_is_an_error(tmp_path):
    result = run("--list", "--store", str(tmp_path))
    assert result.exit_code == 2 and "is a directory" in result.output


@pytest.mark.skipif("learn" not in cli.commands, reason="coder learn is not registered in coder/cli.py yet")
def test_learn_is_registered_in_the_coder_group(team_file, tmp_path):
    result = CliRunner().invoke(cli, ["learn", "--list", "--store", str(tmp_path / "d.sqlite")])
    assert result.exit_code == 0 and "no soc2000 decisions" in result.output


def test_serve_takes_a_store_and_queues():
    from coder.service.commands import serve

    result = CliRunner().invoke(serve, ["--help"])
    assert result.exit_code == 0
    for option in ("--store", "--queue", "--column", "--industry-column", "--description-column", "CODER_STORE"):
        assert option in result.output


def test_serve_refuses_a_queue_that_is_not_a_referral_file(tmp_path, small_model_dir):
    from coder.service.commands import serve

    plain = tmp_path / "plain.csv"
    plain.write_text("job_title\nnurse\n", encoding="utf-8")
    result = CliRunner().invoke(serve, ["--port", "0", "--no-build", "--model-dir", str(small_model_dir),
                                        "--store", str(tmp_path / "d.sqlite"), "--queue", str(plain)])
    assert result.exit_code == 2 and "no 'status' column" in result.output
    assert "Traceback" not in result.output
    lonely = CliRunner().invoke(serve, ["--port", "0", "--column", "job_title"])
    assert lonely.exit_code == 2 and "go with --queue" in lonely.output
