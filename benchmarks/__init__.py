"""Benchmarks: ``python -m benchmarks`` (`benchmarks.run`) measures accuracy and speed beside naive
baselines on the dev sets of `benchmarks.devsets` (held-out index entries clean and messy, survey
answers, the labelled real answers' test part and the industry-hijack check); `benchmarks.messy`
makes messy answers; `benchmarks.service_bench` and `benchmarks.batch_bench` time the service and
batch coding; `benchmarks._common` holds what they share."""
