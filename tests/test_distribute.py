"""Training under tf.distribute.MirroredStrategy on two logical CPU devices (a subprocess, since
logical devices must be configured before TensorFlow starts)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import facemask
    from mrcnn.model import MaskRCNN
    from mrcnn.model.weights import iter_layers

    data, logs = sys.argv[1], sys.argv[2]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    config = facemask.make_config("tiny", GPU_COUNT=strategy.num_replicas_in_sync, IMAGES_PER_GPU=1,
                                  STEPS_PER_EPOCH=2, VALIDATION_STEPS=1)
    train = facemask.load_dataset(data, "train", verbose=False)
    val = facemask.load_dataset(data, "val", verbose=False)
    model = MaskRCNN("training", config, logs, strategy=strategy)
    layer = {l.name: l for l in iter_layers(model.keras_model)}["mrcnn_mask"]
    before = layer.weights[0].numpy().copy()
    history = model.train(train, val, learning_rate=0.01, epochs=1, layers="all", verbose=0)
    after = layer.weights[0].numpy()
    # Each replica keeps its own copy of the BatchNorm moving statistics: the loop averages them.
    moving_mean = {l.name: l for l in iter_layers(model.keras_model)}["bn_conv1"].moving_mean
    copies = [c.numpy() for c in strategy.experimental_local_results(moving_mean.value)]
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "batch": config.BATCH_SIZE,
                      "loss": history.history["loss"][-1], "val_loss": history.history["val_loss"][-1],
                      "changed": bool(not np.allclose(before, after)), "checkpoint": model.find_last(),
                      "bn_copies": len(copies), "bn_copies_equal": all(np.array_equal(copies[0], c) for c in copies),
                      "bn_moved": bool(not np.allclose(copies[0], 0.0))}))
""")


def test_mirrored_strategy_trains_on_two_logical_cpus(tiny_facemask_dir, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_facemask_dir), str(tmp_path / "logs")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2 and result["batch"] == 2
    assert result["changed"]
    assert result["bn_copies"] == 2 and result["bn_moved"] and result["bn_copies_equal"]
    assert result["loss"] == result["loss"] and result["val_loss"] == result["val_loss"]  # not NaN
    assert Path(result["checkpoint"]).is_file()


LOSS_SCALE_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from mrcnn.model.precision import LossScaleOptimizer

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results = []
    for overflowed in (0, 1):
        with strategy.scope():
            w = keras.Variable(np.ones(3, np.float32))
            optimizer = LossScaleOptimizer(keras.optimizers.SGD(0.1))
            optimizer.build([w])
        scale = float(optimizer.dynamic_scale.numpy())

        @tf.function
        def step():
            def replica():
                replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group
                grads = tf.where(tf.equal(replica_id, overflowed), tf.constant([np.inf, 1.0, 1.0]), tf.ones(3))
                optimizer.apply([grads], [w])
            strategy.run(replica)

        step()
        results.append({"weights": [c.numpy().tolist() for c in strategy.experimental_local_results(w.value)],
                        "scale_before": scale, "scale_after": float(optimizer.dynamic_scale.numpy())})
    print(json.dumps(results))
""")


def test_loss_scaling_skips_the_step_on_every_replica_when_one_overflows(tmp_path):
    """One replica's float16 gradients overflow: every replica must skip the step and halve the scale.
    Keras' own LossScaleOptimizer looks at the first replica only: with replica 1 overflowing it applied
    the inf gradients (weights -inf); across workers, one skipping while the other all-reduced hung."""
    proc = subprocess.run(
        [sys.executable, "-c", LOSS_SCALE_SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for overflowed, result in enumerate(json.loads(proc.stdout.strip().splitlines()[-1])):
        assert result["weights"] == [[1.0, 1.0, 1.0]] * 2, f"replica {overflowed} overflowed: {result}"
        assert result["scale_after"] == result["scale_before"] / 2, result
