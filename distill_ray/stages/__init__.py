"""The stages of a sweep: the only code that knows both the sweep file (`config.SweepConfig`) and the experiment
directory (`distill_ray.experiment`). The folders below them (teacher/, verify/, train/, evaluate/, problems/) are
libraries that take typed arguments and paths.

    run.py            shared run helpers: the log line, secrets check, the built-in teacher server, the shared stages
    problems.py       benchmarks kept in the experiment, training problems per domain
    generate.py       raw traces of a (teacher, domain); when generation is complete; when traces may be trained on
    verify.py         verified traces of a (teacher, domain); training examples from them
    evaluate_base.py  base-model scores of a student (the CLI's `evaluate`)
    rescore.py        re-judge every stored response of an experiment (the CLI's `rescore`)

Importing the package imports none of them: import the module you need (`from distill_ray.stages.verify import ...`).
Not guaranteed: anything about stages run concurrently on one experiment directory (one driver per experiment).
"""
