"""The training loop on ``tf.distribute``: one code path for one device, ``MirroredStrategy`` and
``MultiWorkerMirroredStrategy`` (Keras 3's ``fit`` cannot feed the latter, keras-team/keras#20585).

Each step is ``strategy.run(model.train_step)`` inside one ``tf.function``: every replica computes
the losses on its own batch, the optimizer all-reduces (sums) the gradients, which ``train_step``
scaled by 1 / replicas, so the update is the global-batch mean (Keras applies ``global_clipnorm``
to each replica's share before that sum, as under ``fit``). Inputs come from
``distribute_datasets_from_function``: each worker builds and loads only its own shard.
Keras callbacks are driven as ``fit`` drives them; the ones that write files run on the chief only.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf


# ------------------------------------------------------------------------------------ the cluster
def worker_tf_config(worker_hosts: list[str], task_index: int) -> dict:
    """The ``TF_CONFIG`` of worker ``task_index`` in a cluster of ``worker_hosts`` (host:port each);
    worker 0 is the chief."""
    if not 0 <= task_index < len(worker_hosts):
        raise ValueError(
            f"task index {task_index} is not in 0..{len(worker_hosts) - 1} "
            f"(one per worker host: {','.join(worker_hosts)})"
        )
    return {"cluster": {"worker": list(worker_hosts)}, "task": {"type": "worker", "index": task_index}}


def make_strategy(
    gpus: int | None = None, worker_hosts: list[str] | None = None, task_index: int | None = None
) -> tf.distribute.Strategy | None:
    """The strategy a training process runs under, or None (one device).

    ``worker_hosts`` + ``task_index`` (or a ``TF_CONFIG`` already in the environment) make a
    ``MultiWorkerMirroredStrategy``: one process per host, each on all its local GPUs (or its CPU).
    Otherwise ``gpus > 1`` makes a ``MirroredStrategy`` over the local GPUs. Call it before any
    other TensorFlow work: collectives are configured at start-up.
    """
    if worker_hosts:
        if task_index is None:
            raise ValueError("--worker-hosts needs --task-index (this process's position in the list)")
        os.environ["TF_CONFIG"] = json.dumps(worker_tf_config(worker_hosts, task_index))
    elif task_index is not None:
        raise ValueError("--task-index needs --worker-hosts host:port,host:port,...")
    if os.environ.get("TF_CONFIG"):
        try:
            json.loads(os.environ["TF_CONFIG"])
        except ValueError as e:
            raise ValueError(f"TF_CONFIG is not valid JSON ({e}); see the README for an example") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    if gpus and gpus > 1:
        return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(gpus)])
    return None


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the process that writes checkpoints, logs and progress (always, without a cluster)."""
    return bool(strategy.extended.should_checkpoint)


def _all_reduce_scalar(strategy, per_replica_value, op) -> float:
    @tf.function
    def run():
        def replica():
            ctx = tf.distribute.get_replica_context()
            return ctx.all_reduce(op, tf.cast(per_replica_value(ctx.replica_id_in_sync_group), tf.float64))

        return strategy.experimental_local_results(strategy.run(replica))[0]

    return float(run())


def chief_value(strategy: tf.distribute.Strategy, value: float) -> float:
    """The chief's ``value`` on every worker (a collective: every worker must call it)."""
    if strategy.num_replicas_in_sync == 1:
        return value
    return _all_reduce_scalar(
        strategy, lambda replica: tf.cast(tf.equal(replica, 0), tf.float64) * value, tf.distribute.ReduceOp.SUM
    )


# ------------------------------------------------------------------------------------ the steps
def distributed_inputs(strategy: tf.distribute.Strategy, make_dataset):
    """``make_dataset(shard=(count, index))`` -> a per-replica batched ``tf.data.Dataset``, built once
    per worker for its own shard; returns the distributed dataset."""

    def per_worker(context: tf.distribute.InputContext):
        return make_dataset(shard=(context.num_input_pipelines, context.input_pipeline_id))

    return strategy.distribute_datasets_from_function(per_worker)


def _mean_over_replicas(logs: dict) -> dict:
    """In a replica: the replicas' running metric means -> their mean, the global mean (replicas run
    equal steps). A collective under MultiWorkerMirroredStrategy, run by every worker."""
    if tf.distribute.get_strategy().num_replicas_in_sync == 1:
        return logs
    names = sorted(logs)
    means = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.MEAN, [tf.cast(logs[k], tf.float32) for k in names]
    )
    return dict(zip(names, means))


def _first_replica(strategy, values: dict) -> dict:
    """Values that are equal on every replica (all-reduced) -> this worker's first copy."""
    return {k: strategy.experimental_local_results(v)[0] for k, v in values.items()}


def moving_statistics(model: keras.Model) -> list:
    """The BatchNorm moving means/variances a train step can update (layers not frozen).

    Keras creates them with aggregation "none": under a strategy each replica updates its own
    copy from its own batch, and the copies drift apart unless averaged after each step."""
    from .weights import iter_layers

    stats = []
    for layer in iter_layers(model):
        bn = getattr(layer, "layer", layer)  # inside TimeDistributed for the heads
        if (
            isinstance(bn, keras.layers.BatchNormalization)
            and layer.trainable
            and bn.trainable
            and getattr(bn, "train_bn", None) is not False
        ):
            stats += [bn.moving_mean, bn.moving_variance]
    return stats


def step_functions(model: keras.Model, strategy: tf.distribute.Strategy):
    """(train_fn, test_fn): ``fn(iterator) -> {metric: scalar}``, one distributed step each, traced
    once per call of ``train`` (the trainable set may change between stages)."""
    stats = moving_statistics(model) if strategy.num_replicas_in_sync > 1 else []

    def replica_train_step(batch):
        logs = model.train_step(batch)
        if stats:
            # The average of the replicas' moving-average updates = one update by the mean batch statistics.
            means = tf.distribute.get_replica_context().all_reduce(
                tf.distribute.ReduceOp.MEAN, [tf.identity(v.value) for v in stats]
            )
            for variable, mean in zip(stats, means):
                variable.assign(mean)
        return _mean_over_replicas(logs)

    @tf.function
    def train_fn(iterator):
        return _first_replica(strategy, strategy.run(replica_train_step, args=(next(iterator),)))

    @tf.function
    def test_fn(iterator):
        return _first_replica(
            strategy, strategy.run(lambda batch: _mean_over_replicas(model.test_step(batch)), args=(next(iterator),))
        )

    return train_fn, test_fn


def _floats(logs: dict) -> dict[str, float]:
    return {k: float(v) for k, v in logs.items()}


def run_epochs(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    train_data,
    val_data,
    *,
    initial_epoch: int,
    epochs: int,
    steps_per_epoch: int,
    validation_steps: int,
    callbacks: list,
    verbose: int = 1,
) -> keras.callbacks.History:
    """Train from ``initial_epoch`` to ``epochs`` on distributed datasets, as ``fit`` does:
    per epoch ``steps_per_epoch`` train steps, then ``validation_steps`` val steps (logs ``val_*``;
    build ``val_data`` with ``pass_samples`` so every epoch sees the same val batches).

    Every worker runs every step (the collectives need all of them); ``callbacks`` are this worker's.
    """
    history = keras.callbacks.History()
    callback_list = keras.callbacks.CallbackList(
        list(callbacks) + [history],
        add_progbar=verbose != 0,
        model=model,
        verbose=verbose,
        epochs=epochs,
        steps=steps_per_epoch,
    )
    train_fn, test_fn = step_functions(model, strategy)
    train_iter = iter(train_data)
    val_iter = iter(val_data) if val_data is not None else None
    model.stop_training = False
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        for metric in model.metrics:
            metric.reset_state()
        callback_list.on_epoch_begin(epoch)
        logs = {}
        for step in range(steps_per_epoch):
            callback_list.on_train_batch_begin(step)
            logs = _floats(train_fn(train_iter))
            callback_list.on_train_batch_end(step, logs)
        if val_iter is not None:
            for metric in model.metrics:
                metric.reset_state()
            val_logs = {}
            for _ in range(validation_steps):
                val_logs = test_fn(val_iter)
            logs.update({f"val_{k}": v for k, v in _floats(val_logs).items()})
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return history
