/* safetensors reader/writer: round trip, the Python-written fixture, sharded sets, and
 * one specific error per kind of corruption. Usage: test_safetensors <fixture dir> */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "tensor/safetensors.h"

static char tmp_dir[64];

static const char *tmp_path(const char *name)
{
    static char buf[4][256]; /* a few live at once, e.g. shard paths in one call */
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", tmp_dir, name);
    return p;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    fclose(f);
}

/* A safetensors file by hand: length prefix, header text, then data_len bytes 0..n. */
static void write_raw(const char *path, uint64_t header_len, const char *header, size_t data_len)
{
    size_t hl = strlen(header);
    unsigned char *buf = malloc(8 + hl + data_len + 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(header_len >> (8 * i));
    memcpy(buf + 8, header, hl);
    for (size_t i = 0; i < data_len; i++) buf[8 + hl + i] = (unsigned char)i;
    write_bytes(path, buf, 8 + hl + data_len);
    free(buf);
}

/* Like write_raw with the header space-padded to 8 bytes, as current writers do, so the
 * data section starts aligned. */
static void write_padded(const char *path, const char *header, size_t data_len)
{
    char padded[512];
    snprintf(padded, sizeof padded, "%-*s", (int)((strlen(header) + 7) / 8 * 8), header);
    write_raw(path, strlen(padded), padded, data_len);
}

static int contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

/* ---------------------------------------------------------------- round trip */

static void check_entry(const st_model *m, const char *name, const char *dtype_name, int dt,
                        int ndim, const int64_t *shape, const void *data, size_t nbytes)
{
    const st_entry *e = st_find(m, name);
    CHECK(e != NULL, "%s missing", name);
    if (!e) return;
    CHECK(strcmp(e->dtype_name, dtype_name) == 0, "%s: dtype %s", name, e->dtype_name);
    CHECK(e->dt == dt, "%s: dt %d, want %d", name, e->dt, dt);
    CHECK(e->ndim == ndim, "%s: ndim %d, want %d", name, e->ndim, ndim);
    for (int i = 0; i < ndim; i++)
        CHECK(e->shape[i] == shape[i], "%s: shape[%d] %lld", name, i, (long long)e->shape[i]);
    CHECK(e->nbytes == nbytes, "%s: nbytes %zu, want %zu", name, e->nbytes, nbytes);
    if (e->nbytes == nbytes && nbytes)
        CHECK(memcmp(e->data, data, nbytes) == 0, "%s: bytes differ", name);
    if (dt >= 0 && nbytes)
        CHECK((uintptr_t)e->data % dtype_size((dtype)dt) == 0, "%s: misaligned", name);
}

static void test_round_trip(void)
{
    float f32[6];
    uint16_t bf16[4], f16[3];
    int32_t i32[5] = {0, -1, 123456789, INT32_MIN, INT32_MAX};
    float scalar = 3.25f;
    for (int i = 0; i < 6; i++) f32[i] = (float)i * 0.5f - 1.0f;
    for (int i = 0; i < 4; i++) bf16[i] = f32_to_bf16((float)i * -1.5f + 0.125f);
    for (int i = 0; i < 3; i++) f16[i] = f32_to_f16((float)i / 3.0f);
    const int64_t s23[] = {2, 3}, s4[] = {4}, s31[] = {3, 1}, s5[] = {5}, s04[] = {0, 4},
                  s30[] = {3, 0};
    const st_write_entry w[] = {
        {"a.f32", DT_F32, 2, s23, f32},       {"b.bf16", DT_BF16, 1, s4, bf16},
        {"c.f16", DT_F16, 2, s31, f16},       {"d.i32", DT_I32, 1, s5, i32},
        {"scalar", DT_F32, 0, NULL, &scalar}, {"empty", DT_F32, 2, s04, NULL},
        {"empty.i32", DT_I32, 2, s30, NULL},
    };
    const char *keys[] = {"step", "format"}, *vals[] = {"42", "pt"};
    const char *path = tmp_path("rt.safetensors");
    aspo_error_clear();
    CHECK(st_write(path, w, 7, keys, vals, 2) == ASPO_OK, "write: %s", aspo_error_message());
    CHECK(access(tmp_path("rt.safetensors.tmp"), F_OK) != 0, "temp file left behind");

    FILE *f = fopen(path, "rb");
    unsigned char len8[8] = {0};
    CHECK(f && fread(len8, 1, 8, f) == 8, "read length");
    if (f) fclose(f);
    CHECK(len8[0] % 8 == 0, "header length %u not padded to 8", len8[0]);

    st_model m;
    CHECK(st_open(path, &m) == ASPO_OK, "open: %s", aspo_error_message());
    CHECK(m.n_files == 1 && m.n_entries == 7, "%d files, %d entries", m.n_files, m.n_entries);
    for (int i = 1; i < m.n_entries; i++)
        CHECK(strcmp(m.entries[i - 1].name, m.entries[i].name) < 0, "entries not sorted");
    check_entry(&m, "a.f32", "F32", DT_F32, 2, s23, f32, sizeof f32);
    check_entry(&m, "b.bf16", "BF16", DT_BF16, 1, s4, bf16, sizeof bf16);
    check_entry(&m, "c.f16", "F16", DT_F16, 2, s31, f16, sizeof f16);
    check_entry(&m, "d.i32", "I32", DT_I32, 1, s5, i32, sizeof i32);
    check_entry(&m, "scalar", "F32", DT_F32, 0, NULL, &scalar, sizeof scalar);
    check_entry(&m, "empty", "F32", DT_F32, 2, s04, NULL, 0);
    check_entry(&m, "empty.i32", "I32", DT_I32, 2, s30, NULL, 0);
    CHECK(m.n_entries > 0 && m.entries[0].file_index == 0, "file_index");
    CHECK(m.metadata_json && strcmp(m.metadata_json, "{\"format\":\"pt\",\"step\":\"42\"}") == 0,
          "metadata %s", m.metadata_json ? m.metadata_json : "(null)");
    CHECK(st_find(&m, "nope") == NULL && aspo_error_status() == ASPO_OK, "st_find absent");
    CHECK(strcmp(st_file_path(&m, 0), path) == 0, "st_file_path");
    st_close(&m);
    st_close(&m); /* second close is a no-op */

    /* Overwriting replaces the file whole; no metadata gives metadata_json NULL. */
    CHECK(st_write(path, w + 4, 1, NULL, NULL, 0) == ASPO_OK, "rewrite: %s", aspo_error_message());
    CHECK(st_open(path, &m) == ASPO_OK, "reopen: %s", aspo_error_message());
    CHECK(m.n_entries == 1 && m.metadata_json == NULL, "rewrite: %d entries", m.n_entries);
    st_close(&m);
}

static void test_write_errors(void)
{
    const int64_t s2[] = {2}, neg[] = {-1};
    float d[2] = {1, 2};
    const char *path = tmp_path("bad_write.safetensors");
    struct {
        st_write_entry w[2];
        int n;
        const char *word;
    } cases[] = {
        {{{"x", DT_COUNT, 1, s2, d}}, 1, "dtype"},
        {{{"x", DT_F32, 1, neg, d}}, 1, "negative"},
        {{{"x", DT_F32, 9, s2, d}}, 1, "ndim"},
        {{{"x", DT_F32, 1, s2, NULL}}, 1, "NULL"},
        {{{"x", DT_F32, 1, s2, d}, {"x", DT_F32, 1, s2, d}}, 2, "twice"},
        {{{"__metadata__", DT_F32, 1, s2, d}}, 1, "name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        aspo_error_clear();
        aspo_status s = st_write(path, cases[i].w, cases[i].n, NULL, NULL, 0);
        CHECK(s == ASPO_ERR_USAGE, "write case %zu: %s", i, aspo_status_name(s));
        CHECK(contains(aspo_error_message(), cases[i].word), "write case %zu: %s", i,
              aspo_error_message());
        CHECK(access(path, F_OK) != 0, "write case %zu left a file", i);
    }
    aspo_error_clear();
    const char *no_dir = "/nonexistent_aspo_dir/x.safetensors";
    CHECK(st_write(no_dir, cases[0].w + 0, 0, NULL, NULL, 0) == ASPO_ERR_IO,
          "write to missing dir");
    CHECK(contains(aspo_error_message(), no_dir), "%s", aspo_error_message());
    aspo_error_clear();
}

/* ---------------------------------------------------------------- Python fixture */

/* The formulas of make_safetensors_fixture.py. */
static void test_fixture(const char *dir)
{
    float f32[6], scalar = 7.5f;
    uint16_t bf16[8], f16[3];
    int32_t i32[4];
    int64_t i64[3];
    for (int i = 0; i < 6; i++) f32[i] = ((float)i - 2.5f) / 4;
    for (int i = 0; i < 8; i++) bf16[i] = f32_to_bf16(((float)i - 3) * 0.375f);
    for (int i = 0; i < 3; i++) f16[i] = f32_to_f16(((float)i + 1) / 8);
    for (int i = 0; i < 4; i++) i32[i] = i * 1000 - 1500;
    for (int i = 0; i < 3; i++) i64[i] = (int64_t)i * ((int64_t)1 << 33) - 1;
    const int64_t s23[] = {2, 3}, s24[] = {2, 4}, s3[] = {3}, s22[] = {2, 2}, s03[] = {0, 3};

    char path[512];
    snprintf(path, sizeof path, "%s/safetensors_fixture.safetensors", dir);
    st_model m;
    aspo_error_clear();
    CHECK(st_open(path, &m) == ASPO_OK, "fixture: %s", aspo_error_message());
    CHECK(m.n_entries == 7, "fixture: %d entries", m.n_entries);
    check_entry(&m, "f32", "F32", DT_F32, 2, s23, f32, sizeof f32);
    check_entry(&m, "layers.0.bf16", "BF16", DT_BF16, 2, s24, bf16, sizeof bf16);
    check_entry(&m, "f16", "F16", DT_F16, 1, s3, f16, sizeof f16);
    check_entry(&m, "i32", "I32", DT_I32, 2, s22, i32, sizeof i32);
    check_entry(&m, "i64", "I64", -1, 1, s3, i64, sizeof i64);
    check_entry(&m, "scalar", "F32", DT_F32, 0, NULL, &scalar, sizeof scalar);
    check_entry(&m, "empty", "F32", DT_F32, 2, s03, NULL, 0);
    /* Aligned files are read in place: the reference writer put i64 at 0 and f32 at 24. */
    const st_entry *a = st_find(&m, "i64"), *b = st_find(&m, "f32");
    CHECK(a && b && (const char *)b->data - (const char *)a->data == 24, "fixture not zero-copy");
    CHECK(m.metadata_json &&
              strcmp(m.metadata_json,
                     "{\"format\":\"pt\",\"source\":\"make_safetensors_fixture.py\"}") == 0,
          "fixture metadata %s", m.metadata_json ? m.metadata_json : "(null)");
    st_close(&m);
}

/* ---------------------------------------------------------------- shards */

static const char *const shard1 = "model-00001-of-00002.safetensors";
static const char *const shard2 = "model-00002-of-00002.safetensors";

static void write_index(const char *name, const char *weight_map)
{
    char text[1024];
    snprintf(text, sizeof text, "{\"metadata\": {\"total_size\": 40},\n \"weight_map\": %s}\n",
             weight_map);
    write_bytes(tmp_path(name), text, strlen(text));
}

/* st_open(path) must fail with `want`, naming `file` (path when NULL) and containing
 * `word` and, when given, `word2` (usually the tensor). */
static void expect_fail_in(const char *path, const char *file, aspo_status want, const char *word,
                           const char *word2)
{
    st_model m;
    aspo_error_clear();
    aspo_status s = st_open(path, &m);
    const char *msg = aspo_error_message();
    CHECK(s == want, "%s: status %s, want %s (%s)", path, aspo_status_name(s),
          aspo_status_name(want), msg);
    CHECK(contains(msg, file ? file : path), "%s: message lacks the file: %s", path, msg);
    CHECK(contains(msg, word), "%s: message lacks \"%s\": %s", path, word, msg);
    if (word2) CHECK(contains(msg, word2), "%s: message lacks \"%s\": %s", path, word2, msg);
    CHECK(m.n_entries == 0 && m.entries == NULL && m.files == NULL, "%s: model not zeroed", path);
    st_close(&m);
    aspo_error_clear();
}

static void expect_fail(const char *path, aspo_status want, const char *word, const char *word2)
{
    expect_fail_in(path, NULL, want, word, word2);
}

static void test_shards(void)
{
    float a[4] = {1, 2, 3, 4}, c[2] = {-1, -2};
    int32_t b[3] = {7, 8, 9};
    uint16_t d[2] = {f32_to_bf16(0.5f), f32_to_bf16(-0.25f)};
    const int64_t s4[] = {4}, s3[] = {3}, s2[] = {2};
    const st_write_entry w1[] = {{"a", DT_F32, 1, s4, a}, {"b", DT_I32, 1, s3, b}};
    const st_write_entry w2[] = {{"c", DT_F32, 1, s2, c}, {"d", DT_BF16, 1, s2, d}};
    const char *k[] = {"format"}, *v1[] = {"first"}, *v2[] = {"second"};
    CHECK(st_write(tmp_path(shard1), w1, 2, k, v1, 1) == ASPO_OK, "%s", aspo_error_message());
    CHECK(st_write(tmp_path(shard2), w2, 2, k, v2, 1) == ASPO_OK, "%s", aspo_error_message());
    write_index(
        "model.safetensors.index.json",
        "{\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"model-00001-of-00002.safetensors\","
        " \"c\": \"model-00002-of-00002.safetensors\", \"d\": "
        "\"model-00002-of-00002.safetensors\"}");

    const char *opens[] = {tmp_path("model.safetensors.index.json"), tmp_dir};
    for (int i = 0; i < 2; i++) {
        st_model m;
        aspo_error_clear();
        CHECK(st_open(opens[i], &m) == ASPO_OK, "shards via %s: %s", opens[i],
              aspo_error_message());
        CHECK(m.n_files == 2 && m.n_entries == 4, "%d files, %d entries", m.n_files, m.n_entries);
        check_entry(&m, "a", "F32", DT_F32, 1, s4, a, sizeof a);
        check_entry(&m, "b", "I32", DT_I32, 1, s3, b, sizeof b);
        check_entry(&m, "c", "F32", DT_F32, 1, s2, c, sizeof c);
        check_entry(&m, "d", "BF16", DT_BF16, 1, s2, d, sizeof d);
        const st_entry *ea = st_find(&m, "a"), *ed = st_find(&m, "d");
        CHECK(ea && ed && ea->file_index != ed->file_index, "a and d in one shard");
        if (ea && ed) {
            CHECK(contains(st_file_path(&m, ea->file_index), shard1), "a's shard");
            CHECK(contains(st_file_path(&m, ed->file_index), shard2), "d's shard");
        }
        CHECK(m.metadata_json && strcmp(m.metadata_json, "{\"format\":\"first\"}") == 0,
              "metadata of first shard: %s", m.metadata_json ? m.metadata_json : "(null)");
        st_close(&m);
    }

    /* Tensor named in weight_map but absent from its shard. */
    write_index("absent.index.json", "{\"a\": \"model-00001-of-00002.safetensors\", \"e\": "
                                     "\"model-00001-of-00002.safetensors\"}");
    expect_fail(tmp_path("absent.index.json"), ASPO_ERR_FORMAT, "absent", "'e'");
    /* weight_map points at the wrong shard. */
    write_index("wrong.index.json", "{\"c\": \"model-00001-of-00002.safetensors\","
                                    " \"d\": \"model-00002-of-00002.safetensors\"}");
    expect_fail(tmp_path("wrong.index.json"), ASPO_ERR_FORMAT, shard2, "'c'");
    /* The same name in two shards. */
    CHECK(st_write(tmp_path("dup.safetensors"), w1, 1, NULL, NULL, 0) == ASPO_OK, "dup shard");
    write_index("dup.index.json", "{\"a\": \"model-00001-of-00002.safetensors\","
                                  " \"x\": \"dup.safetensors\"}");
    expect_fail_in(tmp_path("dup.index.json"), tmp_path("dup.safetensors"), ASPO_ERR_FORMAT,
                   "duplicate", "'a'");
    /* Missing shard file: the message names the shard. */
    write_index("missing.index.json", "{\"a\": \"model-00009-of-00009.safetensors\"}");
    expect_fail_in(tmp_path("missing.index.json"), tmp_path("model-00009-of-00009.safetensors"),
                   ASPO_ERR_IO, "cannot open", NULL);
    write_index("absolute.index.json", "{\"a\": \"/etc/passwd\"}");
    expect_fail(tmp_path("absolute.index.json"), ASPO_ERR_FORMAT, "relative", "'a'");
    write_index("nomap.index.json", "[]");
    expect_fail(tmp_path("nomap.index.json"), ASPO_ERR_FORMAT, "weight_map", NULL);
    write_bytes(tmp_path("broken.index.json"), "{\"weight_map\": {", 16);
    expect_fail(tmp_path("broken.index.json"), ASPO_ERR_FORMAT, "JSON", "line 1");
}

/* Index files that must be refused before anything is read through them. */
static void test_index_refusals(void)
{
    /* A shard name that leaves the index's directory: refused, even where the file is
     * there to be read (shard1 is one level up from "inner"). */
    static const char *const escapes[] = {
        "\"../model-00001-of-00002.safetensors\"",
        "\"x/../../model-00001-of-00002.safetensors\"",
        "\"./../model-00001-of-00002.safetensors\"",
        "\"..\"",
    };
    CHECK(mkdir(tmp_path("inner"), 0755) == 0, "mkdir inner");
    for (size_t i = 0; i < sizeof escapes / sizeof *escapes; i++) {
        char map[256];
        snprintf(map, sizeof map, "{\"a\": %s}", escapes[i]);
        write_index("inner/escape.index.json", map);
        expect_fail(tmp_path("inner/escape.index.json"), ASPO_ERR_FORMAT, "leaves", "'a'");
    }
    /* Not regular files: a FIFO must be refused, not block the open (main's alarm). */
    CHECK(mkfifo(tmp_path("fifo.safetensors"), 0600) == 0, "mkfifo");
    CHECK(mkfifo(tmp_path("fifo.index.json"), 0600) == 0, "mkfifo");
    expect_fail(tmp_path("fifo.safetensors"), ASPO_ERR_IO, "regular", NULL);
    expect_fail(tmp_path("fifo.index.json"), ASPO_ERR_IO, "FIFO", NULL);
    write_index("fifo_shard.index.json", "{\"a\": \"fifo.safetensors\"}");
    expect_fail_in(tmp_path("fifo_shard.index.json"), tmp_path("fifo.safetensors"), ASPO_ERR_IO,
                   "regular", NULL);
    /* A tensor mapped twice: which shard is meant is unknown. */
    write_index("twice.index.json", "{\"a\": \"model-00001-of-00002.safetensors\",\n"
                                    " \"a\": \"model-00002-of-00002.safetensors\"}");
    expect_fail(tmp_path("twice.index.json"), ASPO_ERR_FORMAT, "twice", "line 3");
}

/* ---------------------------------------------------------------- corrupt files */

#define F32_ENTRY(name, shape, b, e)                                                               \
    "\"" name "\": {\"dtype\": \"F32\", \"shape\": " shape ", \"data_offsets\": [" #b ", " #e "]}"

static void test_corrupt(void)
{
    static const struct {
        const char *file, *header;
        size_t data_len;
        aspo_status want;
        const char *word, *tensor;
    } cases[] = {
        {"json.st", "{\"w\": {\"dtype\": \"F32\",", 0, ASPO_ERR_FORMAT, "not valid JSON",
         "line 1, column"},
        {"notobj.st", "[1, 2]", 0, ASPO_ERR_FORMAT, "expected object", NULL},
        {"dupkey.st", "{" F32_ENTRY("w", "[1]", 0, 4) ", " F32_ENTRY("w", "[1]", 4, 8) "}", 8,
         ASPO_ERR_FORMAT, "duplicate", NULL},
        {"entry.st", "{\"w\": 3}", 0, ASPO_ERR_FORMAT, "expected object", "'w'"},
        /* found by tests/fuzz: read, then refused by the writer */
        {"noname.st", "{" F32_ENTRY("", "[]", 0, 4) "}", 4, ASPO_ERR_FORMAT, "empty name", NULL},
        {"nodtype.st", "{\"w\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, ASPO_ERR_FORMAT,
         "missing \"dtype\"", "'w'"},
        {"noshape.st", "{\"w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4,
         ASPO_ERR_FORMAT, "missing \"shape\"", "'w'"},
        {"nooffs.st", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4, ASPO_ERR_FORMAT,
         "missing \"data_offsets\"", "'w'"},
        {"dtypetype.st", "{\"w\": {\"dtype\": 5, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
         ASPO_ERR_FORMAT, "\"dtype\" is a JSON integer", "'w'"},
        {"shapetype.st", "{" F32_ENTRY("w", "\"2x2\"", 0, 16) "}", 16, ASPO_ERR_FORMAT,
         "\"shape\" is a JSON string", "'w'"},
        {"dimtype.st", "{" F32_ENTRY("w", "[2, 1.5]", 0, 12) "}", 12, ASPO_ERR_FORMAT,
         "shape[1] is a JSON real", "'w'"},
        {"offstype.st", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4,
         ASPO_ERR_FORMAT, "two integers", "'w'"},
        {"dtype.st", "{\"w\": {\"dtype\": \"F128\", \"shape\": [1], \"data_offsets\": [0, 16]}}",
         16, ASPO_ERR_FORMAT, "unknown dtype \"F128\"", "'w'"},
        {"negdim.st", "{" F32_ENTRY("w", "[2, -3]", 0, 0) "}", 0, ASPO_ERR_FORMAT,
         "negative dimension -3", "'w'"},
        {"ndim.st", "{" F32_ENTRY("w", "[1,1,1,1,1,1,1,1,1]", 0, 4) "}", 4, ASPO_ERR_FORMAT,
         "more than 8", "'w'"},
        {"overflow.st", "{" F32_ENTRY("w", "[4294967296, 4294967296]", 0, 4) "}", 4,
         ASPO_ERR_FORMAT, "overflows", "'w'"},
        {"bytesoverflow.st", "{" F32_ENTRY("w", "[4611686018427387904]", 0, 4) "}", 4,
         ASPO_ERR_FORMAT, "overflows", "'w'"},
        {"negoffs.st", "{" F32_ENTRY("w", "[1]", -4, 0) "}", 4, ASPO_ERR_FORMAT, "negative", "'w'"},
        {"endbegin.st", "{" F32_ENTRY("w", "[1]", 8, 4) "}", 8, ASPO_ERR_FORMAT,
         "end 4 is before begin 8", "'w'"},
        {"pastend.st", "{" F32_ENTRY("w", "[4]", 0, 16) "}", 12, ASPO_ERR_FORMAT,
         "past the end of the data section", "'w'"},
        {"mismatch.st", "{" F32_ENTRY("w", "[3]", 0, 16) "}", 16, ASPO_ERR_FORMAT,
         "shape/size mismatch", "'w'"},
        {"overlap.st", "{" F32_ENTRY("u", "[2]", 0, 8) ", " F32_ENTRY("v", "[2]", 4, 12) "}", 12,
         ASPO_ERR_FORMAT, "overlap", "'u'"},
        {"metatype.st", "{\"__metadata__\": [1]}", 0, ASPO_ERR_FORMAT, "__metadata__", NULL},
        {"metavalue.st", "{\"__metadata__\": {\"k\": 1}}", 0, ASPO_ERR_FORMAT, "expected string",
         "\"k\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = tmp_path(cases[i].file);
        write_padded(path, cases[i].header, cases[i].data_len);
        expect_fail(path, cases[i].want, cases[i].word, cases[i].tensor);
    }

    /* Empty tensors share offsets with anything; a gap-free valid file with them opens. */
    const char *ok = "{" F32_ENTRY("a", "[0]", 4, 4) ", " F32_ENTRY("b", "[1]", 0, 4) ", "
                     F32_ENTRY("c", "[2, 0]", 4, 4) "}";
    write_padded(tmp_path("ok.st"), ok, 4);
    st_model m;
    aspo_error_clear();
    CHECK(st_open(tmp_path("ok.st"), &m) == ASPO_OK, "empty tensors: %s", aspo_error_message());
    CHECK(m.n_entries == 3, "empty tensors: %d entries", m.n_entries);
    st_close(&m);

    /* A header not padded to 8, as old or third-party writers leave it: tensors open, each
     * aligned (through a copy) and with its bytes; data is write_raw's 0, 1, 2, ... */
    const char *unpadded = "{\"f\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                           "\"h\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[8,14]},"
                           "\"q\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[14,22]}} ";
    CHECK((8 + strlen(unpadded)) % 2 == 1, "test header should leave data odd-aligned");
    write_raw(tmp_path("unpadded.st"), strlen(unpadded), unpadded, 22);
    aspo_error_clear();
    CHECK(st_open(tmp_path("unpadded.st"), &m) == ASPO_OK, "unpadded: %s", aspo_error_message());
    unsigned char want[22];
    for (int i = 0; i < 22; i++) want[i] = (unsigned char)i;
    const int64_t s2[] = {2}, s3[] = {3}, s1[] = {1};
    check_entry(&m, "f", "F32", DT_F32, 1, s2, want, 8);
    check_entry(&m, "h", "BF16", DT_BF16, 1, s3, want + 8, 6);
    check_entry(&m, "q", "I64", -1, 1, s1, want + 14, 8);
    const st_entry *q = st_find(&m, "q");
    CHECK(q && (uintptr_t)q->data % 8 == 0, "I64 copy misaligned");
    st_close(&m);

    /* Length-field problems. */
    write_bytes(tmp_path("short.st"), "\x10\0\0\0\0", 5);
    expect_fail(tmp_path("short.st"), ASPO_ERR_FORMAT, "shorter than the 8-byte", NULL);
    write_raw(tmp_path("hugelen.st"), 200000000ull, "{}", 0);
    expect_fail(tmp_path("hugelen.st"), ASPO_ERR_FORMAT, "absurdly large", NULL);
    write_raw(tmp_path("maxlen.st"), UINT64_MAX, "{}", 0);
    expect_fail(tmp_path("maxlen.st"), ASPO_ERR_FORMAT, "absurdly large", NULL);
    write_raw(tmp_path("lenpast.st"), 1000, "{}      ", 0);
    expect_fail(tmp_path("lenpast.st"), ASPO_ERR_FORMAT, "header length 1000 runs past the end",
                NULL);
    write_raw(tmp_path("zerolen.st"), 0, "", 0);
    expect_fail(tmp_path("zerolen.st"), ASPO_ERR_FORMAT, "not valid JSON", NULL);

    /* Paths that are not files. */
    expect_fail(tmp_path("does_not_exist.safetensors"), ASPO_ERR_IO, "No such file", NULL);
    if (mkdir(tmp_path("emptydir"), 0755) == 0)
        expect_fail(tmp_path("emptydir"), ASPO_ERR_IO, "neither", NULL);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <fixture dir>\n", argv[0]);
        return 2;
    }
    alarm(120); /* a FIFO opened for reading would block forever: fail instead */
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/aspo_st_XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 2;
    }
    test_round_trip();
    test_write_errors();
    test_fixture(argv[1]);
    test_shards();
    test_index_refusals();
    test_corrupt();
    nftw(tmp_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return check_summary("safetensors");
}
