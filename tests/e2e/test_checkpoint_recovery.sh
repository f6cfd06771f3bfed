#!/bin/sh
# End-to-end: checkpoints and recovery, parts 2 to 6 (restart strategies,
# command-line errors, corrupt checkpoints, retention, nothing silently
# lost); see tests/e2e/checkpoint_cases.sh.
PARTS=recovery
. tests/e2e/checkpoint_cases.sh
