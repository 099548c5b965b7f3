/* src/core/rng.c: xoshiro256** seeded through splitmix64 (see rng.h). */
#include "core/rng.h"

#include <math.h>

/* splitmix64: one step of Vigna's seeding generator; also a good 64-bit
 * mixing function for combining seed words. */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* Each seed word goes through the mixer before the next is added, so
 * (seed, rank, stream) = (1, 0, 0) and (0, 1, 0) give different states. */
void ics_rng_init(ics_rng *rng, uint64_t seed, uint64_t rank, uint64_t stream)
{
    uint64_t x = seed;
    uint64_t h = splitmix64(&x);
    x = h ^ rank;
    h = splitmix64(&x);
    x = h ^ stream;
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&x);
    /* xoshiro's state must not be all zero; splitmix64 outputs never are
     * all four zero, but keep the invariant explicit. */
    if ((rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]) == 0) rng->s[0] = 1;
    rng->has_spare = 0;
    rng->spare = 0.0;
}

uint64_t ics_rng_next(ics_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ics_rng_uniform(ics_rng *rng) { return (double)(ics_rng_next(rng) >> 11) * 0x1.0p-53; }

/* Lemire's rejection: draw until the value falls in the largest multiple
 * of n below 2^64, so every residue is equally likely. */
uint64_t ics_rng_below(ics_rng *rng, uint64_t n)
{
    if (n <= 1) return 0;
    uint64_t limit = -n % n; /* = 2^64 mod n */
    for (;;) {
        uint64_t r = ics_rng_next(rng);
        if (r >= limit) return r % n;
    }
}

/* Box-Muller: two uniforms give two independent normals; the second is
 * kept for the next call. u1 is in (0, 1] so the log is finite. */
double ics_rng_normal(ics_rng *rng)
{
    if (rng->has_spare) {
        rng->has_spare = 0;
        return rng->spare;
    }
    double u1 = 1.0 - ics_rng_uniform(rng);
    double u2 = ics_rng_uniform(rng);
    double r = sqrt(-2.0 * log(u1));
    double theta = 6.283185307179586476925 * u2;
    rng->spare = r * sin(theta);
    rng->has_spare = 1;
    return r * cos(theta);
}
