"""facemask.cli's pure parts: class specs, consistency with a run's config.json, --weights
resolution and one-line errors (the commands using them are tested as subprocesses elsewhere)."""

from __future__ import annotations

import argparse
import json

import pytest

from facemask.cli import CLIError, check_consistent, class_option, cli_main, one_line, resolve_weights
from facemask.data import ClassSpec

RUN = {"CLASSES": "list", "CLASS_NAMES": ["helmet", "vest"], "CLASS_KEY": "label", "PROFILE": "cpu"}


@pytest.mark.parametrize("asked", ["helmet,vest", "Helmet, vest ", "auto", None])
def test_classes_that_agree_with_the_run_are_accepted(asked):
    check_consistent(RUN, "run/config.json", asked, None, None)


@pytest.mark.parametrize("asked", ["vest,helmet", "goggles,vest", "single", "subtypes"])
def test_classes_that_contradict_the_run_are_refused(asked):
    with pytest.raises(CLIError, match="drop --classes"):
        check_consistent(RUN, "run/config.json", asked, None, None)


def test_class_key_and_profile_that_contradict_the_run_are_refused():
    with pytest.raises(CLIError, match="--class-key mask_type but the run used 'label'"):
        check_consistent(RUN, "run/config.json", None, "mask_type", None)
    with pytest.raises(CLIError, match="--profile gpu but the run was trained with --profile cpu"):
        check_consistent(RUN, "run/config.json", None, None, "gpu")
    check_consistent(RUN, "run/config.json", None, "label", "cpu")


def test_class_specs():
    assert ClassSpec.parse("single").names == ("mask",)
    assert ClassSpec.parse("subtypes").key == "mask_type" and ClassSpec.parse("subtypes").num_classes == 5
    assert ClassSpec.parse("auto", "label") == ClassSpec("auto", (), "label")
    assert ClassSpec.parse("a, b,c").names == ("a", "b", "c")
    assert ClassSpec.from_saved({"CLASSES": "subtypes"}).names[0] == "surgical"  # an older run's config.json
    for bad in ("a,A", ",", "BG,face"):
        with pytest.raises(argparse.ArgumentTypeError):
            class_option(bad)


def test_run_folder_as_weights_takes_its_newest_checkpoint(tmp_path):
    run = tmp_path / "facemask20260101T120000"  # the uppercase T once broke the lookup
    run.mkdir()
    for epoch in (1, 2):
        (run / f"mask_rcnn_facemask_{epoch:04d}.h5").write_bytes(b"")
    assert resolve_weights(str(run)) == str(run / "mask_rcnn_facemask_0002.h5")
    empty = tmp_path / "facemask20260101T130000"
    empty.mkdir()
    with pytest.raises(CLIError, match="no mask_rcnn_"):
        resolve_weights(str(empty))
    with pytest.raises(CLIError, match="no face-mask heads"):
        resolve_weights("coco")
    assert resolve_weights("coco", pretrained=True) == "coco"


def test_one_line_keeps_option_dashes_and_cuts_long_lists():
    assert one_line(CLIError("--profile gpu but ...")) == "--profile gpu but ..."
    listed = ValueError("3 problems:\n  - first\n  - --second\n  - third")
    assert one_line(listed) == "3 problems: first; --second; third"  # no ":;"
    assert one_line(ValueError("\n".join(f"- item {i}" for i in range(20)))).endswith("... and 14 more")


def test_user_errors_are_one_line_unless_debugging(monkeypatch, capsys):
    def broken(argv):
        raise CLIError("weights.h5 has 1 class(es) but the config has 4")

    monkeypatch.delenv("FACEMASK_DEBUG", raising=False)
    assert cli_main(broken, []) == 1
    assert capsys.readouterr().err == "error: weights.h5 has 1 class(es) but the config has 4\n"
    monkeypatch.setenv("FACEMASK_DEBUG", "1")  # the traceback instead
    with pytest.raises(CLIError):
        cli_main(broken, [])


def test_a_run_recorded_before_rpn_conv_channels_existed_keeps_matterports_512(tmp_path):
    import facemask
    from facemask.cli import config_for_run, read_run_config

    config = facemask.make_config("cpu")
    values = {k: v for k, v in config.to_dict().items() if k != "RPN_CONV_CHANNELS"}
    (tmp_path / "config.json").write_text(json.dumps(values))
    path, run_values = read_run_config(str(tmp_path / "mask_rcnn_x_0001.h5"))
    assert config_for_run(run_values, path, None, None, None).RPN_CONV_CHANNELS == 512
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))  # a run that recorded it
    path, run_values = read_run_config(str(tmp_path / "mask_rcnn_x_0001.h5"))
    assert config_for_run(run_values, path, None, None, None).RPN_CONV_CHANNELS == 128
