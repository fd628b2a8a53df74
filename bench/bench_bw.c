/*
 * bench_bw.c — the machine's streaming read rate: THREADS threads each read
 * their share of a buffer of MB megabytes with 256-bit loads, 7 times;
 * prints GB/s per pass. Decode of a model is bounded by this rate divided by
 * the bytes of weights per token.
 *
 *   cc -O2 -mavx2 -pthread bench/bench_bw.c -o build/bench_bw && build/bench_bw [THREADS] [MB]
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static size_t N;
static unsigned char *buf;
static int NT;
static double now() {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
static void *rd(void *a) {
    long i = (long)a;
    size_t per = N / NT;
    const __m256i *p = (const __m256i *)(buf + per * i);
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t k = 0; k < per / 32; k += 4) {
        s0 = _mm256_xor_si256(s0, _mm256_load_si256(p + k));
        s1 = _mm256_xor_si256(s1, _mm256_load_si256(p + k + 1));
        s2 = _mm256_xor_si256(s2, _mm256_load_si256(p + k + 2));
        s3 = _mm256_xor_si256(s3, _mm256_load_si256(p + k + 3));
    }
    s0 = _mm256_xor_si256(_mm256_xor_si256(s0, s1), _mm256_xor_si256(s2, s3));
    return (void *)(long)_mm256_extract_epi32(s0, 0);
}
int main(int c, char **v) {
    NT = c > 1 ? atoi(v[1]) : 2;
    N = (size_t)(c > 2 ? atoi(v[2]) : 512) << 20;
    buf = aligned_alloc(4096, N);
    memset(buf, 1, N);
    for (int r = 0; r < 7; r++) {
        double t0 = now();
        pthread_t th[8];
        for (long i = 0; i < NT; i++)
            pthread_create(&th[i], 0, rd, (void *)i);
        for (int i = 0; i < NT; i++)
            pthread_join(th[i], 0);
        double t = now() - t0;
        printf("%.1f ", N / t / 1e9);
    }
    printf("GB/s\n");
}
