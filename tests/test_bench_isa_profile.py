"""bench/isa_profile.py's parsing of oneDNN's profile_exec lines: only the lines after the marker
count, per primitive and direction, per step; the implementation names are kept (they show the cap)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import isa_profile  # noqa: E402

OUTPUT = """\
onednn_verbose,v1,info,cpu,isa:Intel AVX2
onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx2,forward_training,src:f32,,alg:x,mb2_ic3oc64,50.0
=== isa_profile: timed steps start ===
onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx2,forward_training,src:f32 wei:f32,,alg:x,mb2,1.5
onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx2,backward_weights,src:f32,,alg:x,mb2,4.0
onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx2,forward_training,src:f32,,alg:x,mb2,2.5
onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:f32 dst:f32,,,32x32x3x3,0.5
onednn_verbose,v1,primitive,info,template:operation,engine,primitive,implementation,prop_kind,exec_time
some other line, exec, with commas
isa_profile result: {"step_s": [0.1, 0.1]}
"""


def test_rows_per_step_after_the_marker_only():
    rows, impls = isa_profile.aggregate(OUTPUT, steps=2)
    assert rows == {"convolution fwd": 2.0, "convolution bwd weights": 2.0, "reorder": 0.25}
    assert impls["convolution fwd"] == {"brg_conv_fwd:avx2": 2}
    assert isa_profile.primitive_row("onednn_verbose,v1,info,cpu,isa:Intel AVX2".split(",")) is None
