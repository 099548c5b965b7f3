/*
 * src/core/rng.h: a small seeded random number generator, reproducible per
 * (seed, rank, stream). The state is xoshiro256** (Blackman and Vigna), a
 * fast generator with a 2^256 period; it is seeded by running splitmix64
 * over a hash of the three seed words, so neighbouring seeds, ranks and
 * streams give unrelated sequences. Everything that draws random numbers
 * (initialization, dropout masks, data shuffling, augmentation) takes its
 * own ics_rng with its own stream number, so adding a draw in one place
 * does not shift the numbers seen in another.
 */
#ifndef ICS_CORE_RNG_H
#define ICS_CORE_RNG_H

#include <stdint.h>

typedef struct ics_rng {
    uint64_t s[4];
    int has_spare;   /* Box-Muller makes normals in pairs */
    double spare;
} ics_rng;

/* Seeds the generator for (seed, rank, stream). */
void ics_rng_init(ics_rng *rng, uint64_t seed, uint64_t rank, uint64_t stream);
/* The next 64 random bits. */
uint64_t ics_rng_next(ics_rng *rng);
/* Uniform double in [0, 1) with 53 random bits. */
double ics_rng_uniform(ics_rng *rng);
/* Uniform integer in [0, n) without modulo bias (n >= 1). */
uint64_t ics_rng_below(ics_rng *rng, uint64_t n);
/* Standard normal (Box-Muller). */
double ics_rng_normal(ics_rng *rng);

#endif
