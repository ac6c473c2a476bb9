"""Scale-out on Ray (extra ``tremor[ray]``): sharded encoding, sharded builds and fan-out search.

```python
from tremor.distributed import ShardedSearcher, build_sharded, connect

connect("auto")                                   # join the running Ray cluster, or start a local one
build_sharded("corpus.jsonl", "idx-sharded", shards=4, encoder="bm25")
searcher = ShardedSearcher.load("idx-sharded")    # one actor per shard; same API as Searcher
hits = searcher.search("what causes earthquakes", k=10)
```

Importing this package does not import Ray; each function imports it when it runs.
"""

from __future__ import annotations

from tremor.distributed.build import build_sharded, build_sharded_from_vectors, merge_bm25_statistics, shard_ranges
from tremor.distributed.cluster import RayClusterError, ShardError, cluster, connect
from tremor.distributed.encode import VectorShards, encode_sharded
from tremor.distributed.manifest import SHARDS_FILE, is_sharded, read_shards_manifest
from tremor.distributed.search import ShardedDocStore, ShardedSearcher, merge_top_k

__all__ = ["SHARDS_FILE", "RayClusterError", "ShardError", "ShardedDocStore", "ShardedSearcher", "VectorShards",
           "build_sharded", "build_sharded_from_vectors", "cluster", "connect", "encode_sharded", "is_sharded",
           "merge_bm25_statistics", "merge_top_k", "read_shards_manifest", "shard_ranges"]
