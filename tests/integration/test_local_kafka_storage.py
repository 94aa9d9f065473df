"""The local broker's storage formats whatever cluster id its folder holds.

A fresh-clone CI run failed because the random cluster id began with "-" (one draw in
64) and Kafka's storage tool took it for a flag.
"""

from __future__ import annotations

import base64

from pipeline.kafka_local import LocalKafka, new_cluster_id


def test_new_cluster_ids_are_kafka_uuids_that_never_look_like_a_flag() -> None:
    ids = [new_cluster_id() for _ in range(5000)]  # the old draw began with "-" ~78 times
    assert not [cluster_id for cluster_id in ids if cluster_id.startswith("-")]
    assert len(set(ids)) == len(ids)
    for cluster_id in ids[:50]:
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_storage_formats_with_a_kept_id_that_begins_with_a_dash(tmp_path) -> None:
    broker = LocalKafka(port=19392, controller_port=19393, state_dir=tmp_path, heap="256m")
    (tmp_path / "cluster.id").write_text("-" + new_cluster_id()[1:])
    broker.format_storage(broker.write_properties())
    meta = (broker.data_dir / "meta.properties").read_text()
    assert f"cluster.id={(tmp_path / 'cluster.id').read_text()}" in meta
