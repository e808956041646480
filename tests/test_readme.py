"""The README's examples that run in seconds run here, as written."""
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _block(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_own_networks_example_runs_with_plain_jax_callables(capsys):
    code = _block("### Your own networks")
    assert "lambda" in code and "gadjax.nets" not in code  # plain JAX networks, nothing from gadjax.nets
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "(4,) (4,)"


def test_first_command_names_real_flags():
    from gadjax.cli import build_parser
    command = re.search(r"\.venv/bin/gadjax (train .*?) &&", README.read_text()).group(1).split()
    args = build_parser().parse_args(command)
    assert args.model == "fanogan" and args.dataset == "mnist"
