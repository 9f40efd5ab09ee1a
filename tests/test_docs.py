"""The README's set-up commands are the ones CI and users run."""

import re

from conftest import REPO


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text)


def test_readme_opens_with_the_two_setup_commands_and_ci_runs_the_second():
    commands = readme_commands()
    assert len(commands) >= 2
    main_job, tests = commands[0], commands[1]
    assert "sweeps/window_radius.py -m" in main_job and "make_tables.py" in main_job
    assert "pytest" in tests
    ci = (REPO / ".ci" / "run").read_text()
    assert tests in ci.splitlines()


def test_every_sweep_named_in_the_readme_exists():
    text = (REPO / "README.md").read_text()
    for script in set(re.findall(r"(sweeps/\w+\.py|analysis/\w+\.py)", text)):
        assert (REPO / script).is_file(), script
