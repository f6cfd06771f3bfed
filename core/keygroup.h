/*
 * keygroup.h - key groups: the unit of keyed state and of rescaling.
 *
 * A key's bytes are the canonical MessagePack encoding of the key
 * (codec.h); its key group is hash(bytes) % max_parallelism and the subtask
 * that owns a key group is kg * parallelism / max_parallelism, as Flink's
 * KeyGroupRangeAssignment computes it. The hash is XXH3-64 (libxxhash).
 */
#ifndef TD_KEYGROUP_H
#define TD_KEYGROUP_H

#include <stddef.h>
#include <stdint.h>

/* Limits on max parallelism, as Flink's (1 .. 2^15). */
#define TD_MAX_PARALLELISM_LIMIT 32768

/* td_keygroup_hash - 64-bit hash of `len` key bytes (XXH3-64, seed 0). */
uint64_t td_keygroup_hash(const void *key, size_t len);

/* td_keygroup_of - the key group (0 .. max_parallelism-1) of a key hash. */
static inline int td_keygroup_of(uint64_t hash, int max_parallelism) {
  return (int)(hash % (uint64_t)max_parallelism);
}

/* td_keygroup_subtask - the subtask index (0 .. parallelism-1) that owns key
 * group kg, for an operator of `parallelism` subtasks and the job's
 * max_parallelism (Flink's computeOperatorIndexForKeyGroup). */
static inline int td_keygroup_subtask(int kg, int parallelism,
                                      int max_parallelism) {
  return (int)((int64_t)kg * parallelism / max_parallelism);
}

/*
 * td_keygroup_default_max_parallelism - Flink's default max parallelism for
 * an operator of `parallelism` subtasks: parallelism * 1.5 rounded up to a
 * power of two, at least 128 and at most 32768.
 */
int td_keygroup_default_max_parallelism(int parallelism);

#endif
