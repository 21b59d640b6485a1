"""Sharded generation: pairing across intensities, manifests, resume and torn-shard detection."""
import json

import pytest
import torch

from bench.errors import DataError
from bench.shift.dataset import SetSpec, ShardedDatasets
from bench.shift.families import Shift
from bench.shift.rng import draw_anchors


def _sweep(n=25, seed=3):
    return [SetSpec("test", Shift("overlap", s), n, seed) for s in (0.0, 0.2, 0.4)] + \
           [SetSpec("test", Shift("truncation", r), n, seed) for r in (0.9, 1.5)]


def _store(gen, root, **kw):
    return ShardedDatasets(gen, root, draw_anchors(gen.latent_dim, 0), anchor_seed=0, shard_size=10,
                           batch_size=7, progress=False, **kw)


def _shard_bytes(store, specs):
    return {(s, p.name): p.read_bytes() for s in specs for p in sorted(store.path(s).glob("shard-*.safetensors"))}


def test_every_intensity_decodes_the_same_eps_and_labels(tiny_vae, tmp_path):
    specs = _sweep()
    store = _store(tiny_vae, tmp_path)
    store.build(specs)
    loaded = {s: store.load(s) for s in specs}
    labels = [y for _, y in loaded.values()]
    assert all(torch.equal(labels[0], y) for y in labels) and len(labels[0]) == 25
    # the images are G(shift(eps), y) for one eps draw: re-decoding that draw reproduces every set
    from bench.shift.dataset import to_uint8
    from bench.shift.rng import draw_shard
    eps, y0 = draw_shard(3, 0, 10, tiny_vae.latent_dim, 10)
    assert torch.equal(y0, labels[0][:10])
    for spec, (images, _) in loaded.items():
        z = spec.shift.latents(eps, store.anchors.float())
        assert torch.equal(images[:10], to_uint8(tiny_vae.decode(z, y0)))
    # different intensities do change the images
    assert not torch.equal(loaded[specs[0]][0], loaded[specs[2]][0])


def test_manifest_records_provenance(tiny_vae, tmp_path):
    spec = SetSpec("train", Shift("extend", 0.5), 23, 1)
    store = _store(tiny_vae, tmp_path)
    store.build([spec, SetSpec("train", Shift("overlap", 0.0), 23, 1)])  # the same distribution: one set
    manifest = json.loads((store.path(spec) / "manifest.json").read_text())
    assert manifest["complete"] and manifest["generator"]["weights_hash"] == tiny_vae.weights_hash
    assert manifest["shifts"] == [{"family": "extend", "value": 0.5}, {"family": "overlap", "value": 0.0}]
    assert manifest["seeds"] == {"eps_and_labels": 1, "anchors": 0, "rng": "bench"}
    assert [s["n"] for s in manifest["shards"].values()] == [10, 10, 3]
    assert sum(manifest["counts"]["per_class"]) == 23
    assert (store.path(spec) / "grid.png").is_file()


class _Interrupted(RuntimeError):
    pass


def test_resume_after_interruption_mid_shard_is_byte_identical(tiny_vae, tmp_path):
    specs = _sweep()
    reference = _store(tiny_vae, tmp_path / "ref")
    reference.build(specs)
    expected = _shard_bytes(reference, specs)

    store = _store(tiny_vae, tmp_path / "resumed")
    calls = {"n": 0}
    decode = tiny_vae.decode

    def flaky(z, y):  # dies in the middle of the second shard group (batches of 7, groups of 50)
        calls["n"] += 1
        if calls["n"] == 11:
            raise _Interrupted
        return decode(z, y)

    tiny_vae.decode = flaky
    with pytest.raises(_Interrupted):
        store.build(specs)
    tiny_vae.decode = decode
    done = _shard_bytes(store, specs)
    assert 0 < len(done) < len(expected)  # some shards were written, not all
    # a torn shard: bytes on disk that the manifest does not vouch for
    torn = store.path(specs[1]) / "shard-00000.safetensors"
    torn.write_bytes(torn.read_bytes()[:100])
    store.build(specs)
    assert _shard_bytes(store, specs) == expected
    # tearing a finished set is caught on load, and the next build repairs it
    torn.write_bytes(b"\0" * 64)
    with pytest.raises(DataError, match="torn"):
        store.load(specs[1])
    store.build(specs)
    assert _shard_bytes(store, specs) == expected


def test_incomplete_set_is_a_clear_error(tiny_vae, tmp_path):
    store = _store(tiny_vae, tmp_path)
    with pytest.raises(DataError, match="incomplete"):
        store.load(SetSpec("val", Shift("truncation", 0.9), 5, 2))


def _ddp_build(rank: int, world: int, root: str, port: int) -> None:
    """One rank of a gloo process group building the sweep; records what it decoded and wrote."""
    import os

    import torch.distributed as dist

    from bench.shift.generators.vae import Decoder, VAEGenerator

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    gen = VAEGenerator(Decoder(latent_dim=8, num_classes=10, hidden=16), latent_dim=8, num_classes=10, tag="test")
    store = _store(gen, f"{root}/ddp")
    decoded, written = [], []
    decode, write, manifest = store._decode_shard, store._write_shard, store._write_manifest
    store._decode_shard = lambda specs, k, bar: decoded.append(k) or decode(specs, k, bar)
    store._write_shard = lambda *a: written.append(a[1]) or write(*a)
    store._write_manifest = lambda *a: written.append("manifest") or manifest(*a)
    store.build(_sweep(n=45))
    with open(f"{root}/rank{rank}.json", "w") as f:
        json.dump({"decoded": decoded, "written": written}, f)
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_ranks_split_the_shards_and_rank0_alone_writes(tiny_vae, tmp_path):
    """Two gloo ranks: each decodes its own shards, rank 0 writes every shard and manifest, and the
    sets are byte-identical to a single-process build."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_build, args=(2, str(tmp_path), port), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert sorted(ranks[0]["decoded"] + ranks[1]["decoded"]) == [0, 1, 2, 3, 4]  # one stream, 5 shards, each once
    assert ranks[0]["decoded"] and ranks[1]["decoded"] and ranks[1]["written"] == []
    specs = _sweep(n=45)
    single = _store(tiny_vae, tmp_path / "single")
    single.build(specs)
    ddp = _store(tiny_vae, tmp_path / "ddp")
    assert _shard_bytes(single, specs).values() and \
        list(_shard_bytes(single, specs).values()) == list(_shard_bytes(ddp, specs).values())
