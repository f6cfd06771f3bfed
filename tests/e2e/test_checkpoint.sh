#!/bin/sh
# End-to-end: checkpoints and recovery, part 1 (chaos: SIGKILLs at random
# moments and --resume) on the heap backend; see tests/e2e/checkpoint_cases.sh.
PARTS=chaos_heap
. tests/e2e/checkpoint_cases.sh
