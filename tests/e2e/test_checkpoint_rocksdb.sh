#!/bin/sh
# End-to-end: checkpoints and recovery, part 1 (chaos: SIGKILLs at random
# moments and --resume) on the RocksDB backend with incremental
# checkpoints; see tests/e2e/checkpoint_cases.sh.
PARTS=chaos_rocksdb
. tests/e2e/checkpoint_cases.sh
