/*
 * src/data/rng.h: the small deterministic generator the data pipeline uses
 * for splits, the shard permutation, the per-epoch shuffle and
 * augmentation. SplitMix64 (Steele, Lea, Flood 2014): one 64-bit state, so
 * a stream is fully named by its seed, which is what makes "same (seed,
 * epoch, rank) => same batches" and "same seed => same shards" hold on any
 * rank count.
 */
#ifndef ICS_DATA_RNG_H
#define ICS_DATA_RNG_H

#include <stdint.h>

typedef struct ics_data_rng {
    uint64_t state;
} ics_data_rng;

/* A stream named by a seed and up to two stream ids (epoch, rank, ...):
 * the ids are mixed in so neighbouring seeds give unrelated streams. */
static inline void ics_data_rng_seed(ics_data_rng *rng, uint64_t seed, uint64_t id1, uint64_t id2)
{
    rng->state = seed ^ (id1 * 0xd1b54a32d192ed03ull) ^ (id2 * 0xabc98388fb8fac03ull);
}

static inline uint64_t ics_data_rng_next(ics_data_rng *rng)
{
    uint64_t z = (rng->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform integer in [0, bound) without modulo bias (Lemire's
 * multiply-shift with rejection). bound must be > 0. */
static inline uint64_t ics_data_rng_below(ics_data_rng *rng, uint64_t bound)
{
    uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t x = ics_data_rng_next(rng);
        unsigned __int128 m = (unsigned __int128)x * bound;
        if ((uint64_t)m >= threshold) return (uint64_t)(m >> 64);
    }
}

/* Uniform float in [0, 1) from the top 24 bits. */
static inline float ics_data_rng_uniform(ics_data_rng *rng)
{
    return (float)(ics_data_rng_next(rng) >> 40) * (1.0f / 16777216.0f);
}

/* Fisher-Yates shuffle of an index array. */
static inline void ics_data_rng_shuffle(ics_data_rng *rng, int64_t *a, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)ics_data_rng_below(rng, (uint64_t)i + 1);
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

#endif
