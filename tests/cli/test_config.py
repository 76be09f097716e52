"""Settings from TOML files and flags: every key known, every value of its setting's type, empty
strings and out-of-range numbers refused, always as one-line UserErrors (no training is run)."""

import contextlib
import io
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xpnet import cli, config
from xpnet.errors import UserError, flag
from xpnet.settings import SETTINGS

PARSER = cli.build_parser()

# the TOML type of each setting, written out independently of TrainConfig's annotations
TYPES = {
    bool: "tf32 cuda_graph quiet",
    int: "early_stop batch_size epochs seed init_seed validation threads",
    float: "lr warmup momentum weight_decay dropout max_norm label_smoothing l2",
    str: "activation output init lr_schedule optimizer augment early_stop_on class_weight dtype backend device "
    "data_dir save log plots",
    tuple: "layers hidden",
}
EXPECTED = {name: kind for kind, names in TYPES.items() for name in names.split()}


def toml(v) -> str:
    """A Python value as a TOML value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(map(toml, v)) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml(x)}" for k, x in v.items()) + "}"
    return repr(v)  # int, float (nan and inf included)


def fits(value, kind) -> bool:
    """The oracle: whether a TOML value has a setting's type (a bool is no number; an int is a float)."""
    if kind is tuple:
        return type(value) is list and all(type(v) is int for v in value)
    return type(value) is kind or (kind is float and type(value) is int)


def resolve(path):
    args = PARSER.parse_args(["train", "--config", str(path)])
    return config.resolve(vars(args))[0]


def test_setting_types_come_from_train_config():
    assert {name: s.kind for name, s in SETTINGS.items()} == EXPECTED, (
        "a setting was added or changed: write its TOML type in TYPES"
    )


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8)
VALUES = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    TEXT,
    st.lists(st.integers(-3, 900), max_size=4),
    st.lists(st.booleans(), min_size=1, max_size=3),
    st.lists(TEXT, min_size=1, max_size=3),
    st.lists(st.floats(), min_size=1, max_size=2),
    st.dictionaries(st.sampled_from("ab"), st.integers(), max_size=2),
)


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(sorted(EXPECTED)), value=VALUES, dashes=st.booleans(), table=st.booleans())
def test_any_toml_value_is_taken_or_refused_in_one_line(tmp_path_factory, name, value, dashes, table):
    key = name.replace("_", "-") if dashes else name
    path = tmp_path_factory.mktemp("toml") / "run.toml"
    path.write_text(("[train]\n" if table else "") + f"{key} = {toml(value)}\n", encoding="utf-8")
    try:
        got = config.from_toml(str(path))
    except UserError as e:
        msg = str(e)
        assert str(path) in msg and key in msg and "\n" not in msg
        assert not fits(value, EXPECTED[name]) or "expected one of" in msg  # of the type, but not a choice
        return
    assert fits(value, EXPECTED[name])
    want = tuple(value) if isinstance(value, list) else float(value) if EXPECTED[name] is float else value
    assert repr(got) == repr({name: want}) and type(got[name]) is EXPECTED[name]  # an int for a float: a float
    try:
        resolve(path)  # the whole check: ranges, empty strings, paths
    except UserError as e:
        assert "\n" not in str(e) and flag(name) in str(e)


@pytest.mark.parametrize(
    "text,needles",
    [
        ("train = 5\n", ["train = 5", "[train] table"]),
        ('train = "x"\n', ["train", "[train] table"]),
        ("lr = 0.1\n[train]\nepochs = 1\n", ["'lr'", "beside [train]"]),
        ("[train]\nepochs = 1\n[model]\nhidden = [3]\n", ["'model'", "beside [train]"]),
        ("[model]\nhidden = [3]\n", ["unknown table 'model'", "batch-size"]),
        ("colour = 3\n", ["unknown key 'colour'", "batch-size"]),
        ("[train]\ncolour = 3\n", ["unknown key 'colour' in [train]"]),
        ("[train]\n[train.extra]\nx = 1\n", ["unknown table 'extra'"]),
        ("preset = 'nielsen'\n", ["unknown key 'preset'"]),
        ("batch-size = 3\nbatch_size = 4\n", ["batch_size", "second time"]),
        ("data_dir = []\n", ["data_dir", "expected a string"]),
        ("epochs = true\n", ["epochs = true", "expected an integer"]),
        ("epochs = 2.0\n", ["epochs = 2.0", "expected an integer"]),
        ("seed = 1979-05-27\n", ["seed", "expected an integer"]),
        ('lr = "0.1"\n', ["lr", "expected a number"]),
        ("lr = false\n", ["lr = false", "expected a number"]),
        (f"lr = 1{'0' * 400}\n", ["lr", "too large"]),
        ("quiet = 1\n", ["quiet = 1", "true or false"]),
        ("hidden = [30, true]\n", ["hidden = [30, true]", "list of integers"]),
        ('hidden = "30"\n', ["hidden", "list of integers"]),
        ("hidden = 30\n", ["hidden", "list of integers"]),
        ('activation = "swish"\n', ["activation", "expected one of"]),
    ],
)
def test_config_file_mistakes_name_the_file_and_key(tmp_path, text, needles):
    path = tmp_path / "run.toml"
    path.write_text(text)
    with pytest.raises(UserError) as e:
        config.from_toml(str(path))
    for needle in (str(path), *needles):
        assert needle in str(e.value)


def test_config_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('activation = "tanh" # café\n'.encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        config.from_toml(str(path))


@pytest.mark.parametrize("name", TYPES[str].split())
def test_empty_strings_are_refused_in_files_and_flags(tmp_path, name):
    path = tmp_path / "run.toml"
    path.write_text(f'{name} = ""\n')
    with pytest.raises(UserError) as e:  # as an empty string, or as no choice of the flag's
        resolve(path)
    assert f"{flag(name)} ''" in str(e.value) or f'{name} = ""' in str(e.value)
    with pytest.raises(UserError) as e:
        args = PARSER.parse_args(["train", flag(name), ""])
        config.resolve(vars(args))
    assert flag(name) in str(e.value)


@pytest.mark.parametrize("name", ["config", "resume"])
def test_empty_config_and_resume_paths_are_refused(name):
    args = PARSER.parse_args(["train", flag(name), ""])
    with pytest.raises(UserError, match=f"{flag(name)} ''"):
        config.resolve(vars(args))


@pytest.mark.parametrize(
    "text,needle",
    [
        ("hidden = [0]", "--hidden 0"),
        ("layers = []", "--layers ''"),
        ("layers = [784]", "--layers 784"),
        ("layers = [784, 0, 10]", "--layers 784,0,10"),
    ],
)
def test_layer_sizes_are_checked_before_any_data(tmp_path, text, needle):
    path = tmp_path / "run.toml"
    path.write_text(text + "\n")
    with pytest.raises(UserError, match=needle):
        resolve(path)


def run_main(*argv) -> str:
    """cli.main's stderr for a command that must end in a UserError (exit 2)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(list(argv)) == 2
    assert len(err.getvalue().splitlines()) == 1, err.getvalue()
    return err.getvalue()


NO_DATA = "--data-dir=/nonexistent/xpnet-data"  # the first check after the flags' own


@settings(max_examples=150, deadline=None)
@given(
    lr=st.floats() | st.sampled_from([0.0, -0.0, math.inf, 5e-324]), command=st.sampled_from(["train", "walkthrough"])
)
def test_train_and_walkthrough_take_the_same_learning_rates(lr, command):
    err = run_main(command, f"--lr={lr!r}", NO_DATA)
    refused = "--lr" in err
    assert refused == (not (math.isfinite(lr) and lr > 0)), err
    assert refused != ("/nonexistent/xpnet-data" in err)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(-(2**70), 2**70), command=st.sampled_from(["train", "walkthrough"]))
def test_train_and_walkthrough_take_the_same_seeds(seed, command):
    err = run_main(command, f"--seed={seed}", NO_DATA)
    assert ("--seed" in err) == (seed < 0), err


def test_the_train_flags_are_the_table_and_the_choices_its_modules():
    """Every setting is a flag of xpnet train with the table's choices, which are the
    implementing modules' own lists."""
    from xpnet import backends
    from xpnet.engine import augment, model, optim

    train = next(a for a in PARSER._subparsers._group_actions if a.dest == "command").choices["train"]
    flags = {a.dest: a for a in train._actions}
    assert set(SETTINGS) <= set(flags)
    for name, s in SETTINGS.items():
        assert s.flag() in flags[name].option_strings and (flags[name].choices or ()) == (s.choices or ())
    assert SETTINGS["optimizer"].choices == optim.OPTIMIZERS and SETTINGS["augment"].choices == augment.KINDS
    assert SETTINGS["activation"].choices == model.ACTIVATIONS and SETTINGS["backend"].choices == backends.BACKENDS
    assert SETTINGS["cuda_graph"].flag() == "--no-cuda-graph"


def test_layers_and_hidden_together_are_refused(tmp_path):
    with pytest.raises(UserError, match="--hidden and --layers both given"):
        config.resolve(vars(PARSER.parse_args(["train", "--hidden", "16", "--layers", "784,16,10"])))
    path = tmp_path / "both.toml"
    path.write_text("layers = [784, 16, 10]\nhidden = [16]\n")
    with pytest.raises(UserError, match="layers and hidden at the top level both given"):
        config.from_toml(str(path))
