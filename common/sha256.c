/* sha256.c — SHA-256 (FIPS 180-4, section 6.2) for the ledger's [end] digest.
 *
 * Why not GChecksum alone: its portable C was 40 % of the instructions of a hook
 * `prepare` (the digests of the old and the new host file). Why not libcrypto:
 * loading it costs the hook ~0.9 ms of relocations, more than it would save. So on
 * x86-64 CPUs with the SHA extensions the compression function is theirs
 * (SHA256RNDS2 does two rounds, SHA256MSG1/MSG2 the message schedule); anywhere
 * else, GChecksum. Both give the same digest: the tests compare them on every
 * length up to 1 KiB, random buffers and real ledger files. */
#include "sha256.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define IC_SHA256_X86 1
#include <immintrin.h>
/* glibc (2.33 and later) asked CPUID at start-up and keeps the answers: reading
 * them costs nothing, while a CPUID instruction in a virtual machine traps to the
 * hypervisor (4.7 us each on the development VM; <cpuid.h>'s checks below make four). */
#if defined(__has_include) && __has_include(<sys/platform/x86.h>)
#define IC_SHA256_GLIBC_FEATURES 1
#include <sys/platform/x86.h>
#else
#include <cpuid.h>
#endif
#endif

#define BLOCK_BYTES  64
#define DIGEST_BYTES 32

static char *hex_of_digest(const guint8 *digest)
{
    static const char digits[] = "0123456789abcdef";
    char *hex = g_malloc(2 * DIGEST_BYTES + 1);
    for (guint i = 0; i < DIGEST_BYTES; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 0xf];
    }
    hex[2 * DIGEST_BYTES] = '\0';
    return hex;
}

static char *sha256_portable(const void *data, gsize len)
{
    return g_compute_checksum_for_data(G_CHECKSUM_SHA256, data, len);
}

#ifdef IC_SHA256_X86

/* 4.2.2: the first 32 bits of the fractional parts of the cube roots of the first
 * 64 primes. Aligned: each group of four is one 128-bit load. */
static const guint32 round_constants[64] __attribute__((aligned(16))) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* 5.3.3: the initial hash value H(0), a to h: the first 32 bits of the fractional
 * parts of the square roots of the first 8 primes. */
static const guint32 initial_hash[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

#define SHA_NI_TARGET __attribute__((target("sha,sse4.1,ssse3")))

/* The message and the digest are big-endian 32-bit words; a lane holds one in the
 * CPU's order. This mask reverses the bytes within each lane. */
SHA_NI_TARGET static inline __m128i swap_lanes_mask(void)
{
    return _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
}

/* The working variables live where SHA256RNDS2 wants them: @abef holds (A, B, E, F)
 * and @cdgh (C, D, G, H), the first letter in the highest lane. Hashes @blocks
 * 64-byte blocks at @p into them (6.2.2, steps 1 to 4). */
SHA_NI_TARGET static void compress(__m128i *abef, __m128i *cdgh, const guint8 *p, gsize blocks)
{
    const __m128i swap = swap_lanes_mask();
    __m128i s0 = *abef, s1 = *cdgh;

    for (; blocks > 0; blocks--, p += BLOCK_BYTES) {
        const __m128i start0 = s0, start1 = s1;
        /* w[g % 4] holds W(4g) .. W(4g+3), W(4g) in the lowest lane: the last 16
         * words of the schedule, which is all its recurrence needs. */
        __m128i w[4];
        for (guint i = 0; i < 4; i++)
            w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), swap);

#pragma GCC unroll 16
        for (guint g = 0; g < 16; g++) {
            if (g >= 4) {
                /* W(t) = σ1(W(t-2)) + W(t-7) + σ0(W(t-15)) + W(t-16), four words
                 * at a time (t = 4g .. 4g+3). MSG1 adds σ0(W(t-15)) to W(t-16);
                 * W(t-7) straddles the last two groups; MSG2 adds σ1(W(t-2)),
                 * including for the two words it makes itself. */
                const __m128i last = w[(g + 3) % 4];   /* W(4g-4) .. W(4g-1) */
                const __m128i before = w[(g + 2) % 4]; /* W(4g-8) .. W(4g-5) */
                __m128i x = _mm_sha256msg1_epu32(w[g % 4], w[(g + 1) % 4]);
                x = _mm_add_epi32(x, _mm_alignr_epi8(last, before, 4));
                w[g % 4] = _mm_sha256msg2_epu32(x, last);
            }
            __m128i wk =
                _mm_add_epi32(w[g % 4], _mm_load_si128((const __m128i *)&round_constants[4 * g]));
            /* Rounds 4g and 4g+1 (the lower two lanes of wk): the new (A, B, E, F)
             * comes back, the old one is the new (C, D, G, H). */
            s1 = _mm_sha256rnds2_epu32(s1, s0, wk);
            /* Rounds 4g+2 and 4g+3, on the upper two lanes moved down. */
            s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(wk, 0x0e));
        }
        /* Step 4: H(i) = working variables + H(i-1). */
        s0 = _mm_add_epi32(s0, start0);
        s1 = _mm_add_epi32(s1, start1);
    }
    *abef = s0;
    *cdgh = s1;
}

SHA_NI_TARGET static char *sha256_sha_ni(const void *data, gsize len)
{
    const __m128i swap = swap_lanes_mask();
    /* (a, b, c, d), (e, f, g, h) in memory order -> (A, B, E, F), (C, D, G, H). */
    __m128i abcd = _mm_loadu_si128((const __m128i *)&initial_hash[0]);
    __m128i efgh = _mm_loadu_si128((const __m128i *)&initial_hash[4]);
    __m128i badc = _mm_shuffle_epi32(abcd, 0xb1);     /* lanes low to high: b a d c */
    __m128i hgfe = _mm_shuffle_epi32(efgh, 0x1b);     /* h g f e */
    __m128i abef = _mm_alignr_epi8(badc, hgfe, 8);    /* f e b a */
    __m128i cdgh = _mm_blend_epi16(hgfe, badc, 0xf0); /* h g d c */

    const gsize full = len / BLOCK_BYTES, rest = len % BLOCK_BYTES;
    if (full > 0)
        compress(&abef, &cdgh, data, full);

    /* 5.1.1: the rest, a 1 bit, zeros and the length in bits as a big-endian
     * 64-bit number, in one block or two. (A length of 2^61 bytes or more does
     * not fit; no buffer in memory has one.) */
    guint8 tail[2 * BLOCK_BYTES] = {0};
    if (rest > 0)
        memcpy(tail, (const guint8 *)data + full * BLOCK_BYTES, rest);
    tail[rest] = 0x80;
    const gsize tail_bytes = rest + 1 + 8 <= BLOCK_BYTES ? BLOCK_BYTES : 2 * BLOCK_BYTES;
    const guint64 bits = GUINT64_TO_BE((guint64)len * 8);
    memcpy(tail + tail_bytes - 8, &bits, 8);
    compress(&abef, &cdgh, tail, tail_bytes / BLOCK_BYTES);

    /* Back to (a, b, c, d), (e, f, g, h), each word big-endian: the digest. */
    __m128i abfe = _mm_shuffle_epi32(abef, 0x1b); /* lanes low to high: a b e f */
    __m128i ghcd = _mm_shuffle_epi32(cdgh, 0xb1); /* g h c d */
    abcd = _mm_blend_epi16(abfe, ghcd, 0xf0);
    efgh = _mm_alignr_epi8(ghcd, abfe, 8);
    guint8 digest[DIGEST_BYTES];
    _mm_storeu_si128((__m128i *)&digest[0], _mm_shuffle_epi8(abcd, swap));
    _mm_storeu_si128((__m128i *)&digest[16], _mm_shuffle_epi8(efgh, swap));
    return hex_of_digest(digest);
}

/* The instructions need SHA (CPUID leaf 7, EBX bit 29), and the shuffles SSSE3
 * and SSE4.1 (leaf 1, ECX bits 9 and 19). The OS saves the XMM registers on
 * every x86-64. */
static gboolean cpu_has_sha_ni(void)
{
#ifdef IC_SHA256_GLIBC_FEATURES
    return CPU_FEATURE_ACTIVE(SHA) && CPU_FEATURE_ACTIVE(SSSE3) && CPU_FEATURE_ACTIVE(SSE4_1);
#else
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
        return FALSE;
    if ((ecx & bit_SSSE3) == 0 || (ecx & bit_SSE4_1) == 0)
        return FALSE;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx))
        return FALSE;
    return (ebx & bit_SHA) != 0;
#endif
}

#endif /* IC_SHA256_X86 */

gboolean ic_sha256_have_sha_ni(void)
{
#ifdef IC_SHA256_X86
    /* Asked once: 1 = no, 2 = yes (g_once needs a value other than 0). */
    static gsize answer = 0;
    if (g_once_init_enter(&answer))
        g_once_init_leave(&answer, cpu_has_sha_ni() ? 2 : 1);
    return answer == 2;
#else
    return FALSE;
#endif
}

char *ic_sha256_hex_with(IcSha256Impl impl, const void *data, gsize len)
{
    g_return_val_if_fail(data != NULL || len == 0, NULL);
    if (impl == IC_SHA256_AUTO)
        impl = ic_sha256_have_sha_ni() ? IC_SHA256_SHA_NI : IC_SHA256_PORTABLE;
    if (impl == IC_SHA256_PORTABLE)
        return sha256_portable(data, len);
    g_return_val_if_fail(ic_sha256_have_sha_ni(), NULL);
#ifdef IC_SHA256_X86
    return sha256_sha_ni(data, len);
#else
    return NULL; /* not reached: no SHA extensions here, refused above */
#endif
}

char *ic_sha256_hex(const void *data, gsize len)
{
    return ic_sha256_hex_with(IC_SHA256_AUTO, data, len);
}
