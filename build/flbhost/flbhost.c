/*
 * flbhost - a stand-in for Fluent Bit that loads a Go output plugin built
 * with -buildmode=c-shared and drives it the way Fluent Bit's Go proxy
 * (src/proxy/go/go.c, src/flb_plugin_proxy.c) does.  It exists so that the
 * project can test its Fluent Bit plugin without a Fluent Bit binary.  See
 * /work/shared/fluent-bit-go-abi.md for the facts reproduced here and
 * build/flbhost/README.md for the full description.
 *
 * Build (this exact command is what the Makefile uses):
 *
 *   gcc -O2 -Wall -Wextra -o bin/flbhost build/flbhost/flbhost.c -ldl -lpthread
 *
 * Usage:
 *
 *   flbhost -p PLUGIN.so [-w WORKERS] [-r REPEAT] [-s STACK_BYTES] [-z COPIES] [-x] [-v]
 *           -i NAME [-o key=value ...] [-i NAME -o key=value ...]
 *           [-c INSTANCE:TAG:CHUNKFILE ...]
 *
 *   -p PLUGIN.so  the c-shared plugin, loaded with dlopen(RTLD_LAZY).
 *   -i NAME       starts a new [OUTPUT] instance of the plugin.  NAME must be
 *                 the name the plugin registers (compared case-insensitively,
 *                 as Fluent Bit does).  Instances are named REGISTERED.N
 *                 (N = 0, 1, ... in command-line order) unless given an alias.
 *   -o key=value  a property of the latest -i instance.  The value is expanded
 *                 like Fluent Bit does (${VAR} from the environment; unset is
 *                 empty) and an empty value is stored as "no value".  Fluent
 *                 Bit's core output keys (match, match_regex, alias, log_level,
 *                 log_suppress_interval, host, port, ipv6, retry_limit, net.*,
 *                 tls, tls.verify, tls.verify_hostname, tls.debug, tls.vhost,
 *                 tls.ca_path, tls.ca_file, tls.crt_file, tls.key_file,
 *                 tls.key_passwd, tls.min_version, tls.max_version,
 *                 tls.ciphers, storage.total_limit_size, workers) are consumed
 *                 by the host and never reach the plugin; "workers" sets that
 *                 instance's worker count and "alias" its name.  The plugin's
 *                 lookups are case-insensitive and return NULL for a missing
 *                 key (fluent-bit-go turns that into "").
 *   -c I:TAG:FILE flushes the raw msgpack bytes of FILE with TAG to instance I,
 *                 where I is the 0-based instance index, its alias or its
 *                 NAME.N.  TAG may not contain ':'; FILE may.
 *   -w N          default worker count for every instance (default 0).  With
 *                 0 workers all flushes run one at a time on the engine thread;
 *                 with N > 0 an instance's flushes are spread over N threads
 *                 that flush the same instance (same context) concurrently.
 *                 Either way every flush runs inside a coroutine on a small
 *                 stack made with makecontext/swapcontext, as Fluent Bit does.
 *   -r N          flush every chunk N times (default 1; for benchmarks).  With
 *                 N > 1 the per-flush lines are not printed.
 *   -s BYTES      coroutine stack size (default 24576, Fluent Bit's default).
 *   -z N          zero-copy flushes (for benchmarks): make N copies of every
 *                 chunk before the flush phase and hand the flushes those
 *                 copies in turn, without the private copy per flush and its
 *                 poisoning.  Fluent Bit hands an output the chunk's own
 *                 buffer (flb_input_chunk_flush returns the chunk content, no
 *                 copy), so the per-flush copy is this host's check that a
 *                 plugin keeps no reference, not a cost Fluent Bit has; with
 *                 N copies of 500 KB chunks a flush reads memory its
 *                 predecessor did not touch.
 *   -x            hold: after the flushes, print "flbhost: holding" and wait
 *                 for a line (or EOF) on stdin, SIGUSR1 or SIGTERM/SIGINT
 *                 before running the exit sequence.
 *   -v            trace every property lookup on stderr.
 *
 * Sequence (main thread): install SIGTERM/SIGINT/SIGUSR1 handlers, read the
 * chunk files, dlopen, FLBPluginPreRegister(0) if exported (-1 aborts),
 * FLBPluginRegister(def) with a zeroed 64-byte def (must set type 2, proxy
 * 11).  Then an "engine" thread runs, per instance in order,
 * FLBPluginInit(plugin) with the SAME plugin pointer each time and o_ins and
 * context overwritten before each call (rc <= 0 fails), then
 * FLBPluginOutputPreRun(0) per instance if exported, the flushes
 * (FLBPluginFlushCtx(remote_context, data, size, tag) if exported, else
 * FLBPluginFlush(data, size, tag)), each on a private malloc'd copy of the
 * chunk and tag that is overwritten with 0xAA and freed once the call
 * returns, and finally, per instance, FLBPluginOutputPreExit(0) if exported
 * and FLBPluginExitCtx(remote_context), else FLBPluginExit().  Back on the
 * main thread: FLBPluginUnregister(def) if exported, then dlclose.
 * SIGTERM/SIGINT at any time stop new flushes and run the exit sequence.
 *
 * Output on stdout, one line each (the chunk path is the last field but rc):
 *   flbhost: register name=NAME type=T proxy=P flags=F event_type=E description=TEXT
 *   flbhost: init instance=NAME.N rc=RC
 *   flush instance=NAME.N tag=TAG chunk=FILE rc=RC          (only if REPEAT == 1)
 *   flbhost: rc_ok=A rc_retry=B rc_error=C rc_other=D        (rc_other is the part
 *                                                            of rc_error that was
 *                                                            not 0, 1 or 2)
 *   flbhost: flushes=N bytes=B records=R seconds=S cpu_seconds=C
 *   flbhost: holding                                         (with -x)
 *   flbhost: released by=stdin|eof|SIGUSR1|SIGTERM|SIGINT     (with -x)
 *   flbhost: exit instance=NAME.N func=FLBPluginExitCtx|FLBPluginExit|none rc=RC
 *   flbhost: unregister
 *   flbhost: done status=S
 * "records" counts the top-level msgpack objects of the chunks flushed (group
 * markers included); "seconds" is the CLOCK_MONOTONIC time of the flush phase,
 * "cpu_seconds" the CPU time (user + system, all threads) the process used in it.
 * Diagnostics go to stderr prefixed "flbhost: ".
 *
 * Exit status: 0 when the plugin registered, every instance initialised and
 * the exit sequence ran (whatever the flush return codes); 1 when loading,
 * registration, a chunk file or an Init failed (the reason is printed); 2 for
 * a usage error.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* The ABI shared with the plugin (x86-64 layouts as in Fluent Bit).        */

#define FLB_ERROR 0
#define FLB_OK 1
#define FLB_RETRY 2

#define FLB_PROXY_OUTPUT_PLUGIN 2
#define FLB_PROXY_GOLANG 11

/* Fluent Bit calloc's this; newer fluent-bit-go writes up to offset 40. */
struct flb_plugin_proxy_def {
    int type;           /* 0  */
    int proxy;          /* 4  */
    int flags;          /* 8  */
    char *name;         /* 16 */
    char *description;  /* 24 */
    int event_type;     /* 32 */
    void *config_map;   /* 40 */
};
#define DEF_ALLOC_SIZE 64

struct flb_api {
    const char *(*output_get_property)(const char *key, void *o_ins);
    const char *(*input_get_property)(const char *key, void *i_ins);
    void *(*output_get_cmt_instance)(void *o_ins);
    void *(*input_get_cmt_instance)(void *i_ins);
    void (*log_print)(int, const char *, int, const char *, ...);
    int (*input_log_check)(void *i_ins, int level);
    int (*output_log_check)(void *o_ins, int level);
};

struct host_proxy;

/* One per instance (Fluent Bit: flb_plugin_proxy_context). */
struct flb_plugin_proxy_context {
    void *remote_context;      /* set by FLBPluginSetContext inside Init */
    struct host_proxy *proxy;
};

struct flbgo_output_plugin;
typedef int (*cb_init_t)(struct flbgo_output_plugin *);
typedef int (*cb_flush_t)(const void *, size_t, const char *);
typedef int (*cb_flush_ctx_t)(void *, const void *, size_t, char *);
typedef int (*cb_exit_t)(void);
typedef int (*cb_exit_ctx_t)(void *);
typedef int (*cb_pre_register_t)(int);
typedef int (*cb_register_t)(struct flb_plugin_proxy_def *);
typedef void (*cb_unregister_t)(struct flb_plugin_proxy_def *);
typedef int (*cb_pre_run_t)(int);
typedef void (*cb_pre_exit_t)(int);

/* The `plugin` pointer given to FLBPluginInit: one for all instances. */
struct flbgo_output_plugin {
    char *name;                               /* 0  */
    struct flb_api *api;                      /* 8  */
    void *o_ins;                              /* 16 */
    struct flb_plugin_proxy_context *context; /* 24 */
    cb_init_t cb_init;
    cb_flush_t cb_flush;
    cb_flush_ctx_t cb_flush_ctx;
    cb_exit_t cb_exit;
    cb_exit_ctx_t cb_exit_ctx;
};

/* ------------------------------------------------------------------------ */
/* Host state.                                                              */

#define DEFAULT_STACK_SIZE (24 * 1024)
#define MIN_STACK_SIZE 4096
#define MAX_WORKERS 256
#define CORO_STACKS 2 /* per thread, used in turn: each flush gets a new SP */

struct prop {
    char *key;
    char *val; /* NULL when the value is empty, as in Fluent Bit */
};

struct instance {
    int index;
    char *plugin_name;  /* as given with -i */
    char *alias;
    char name[256];     /* alias, or plugin_name.index */
    int workers;        /* -1: use -w */
    struct prop *props;
    size_t nprops;
    size_t props_cap;
    struct flb_plugin_proxy_context *ctx;
    int initialized;
};

struct chunk {
    char *spec_instance;
    struct instance *ins;
    char *tag;
    char *file;
    unsigned char *data;
    size_t size;
    uint64_t records;
    unsigned char **copies;     /* with -z: the copies flushes get in turn */
    uint64_t next;              /* with -z: the next copy (atomic) */
};

struct host_proxy {
    void *dso;
    struct flb_plugin_proxy_def *def;
    struct flbgo_output_plugin *plugin;
    cb_pre_run_t cb_pre_run;
    cb_pre_exit_t cb_pre_exit;
    cb_unregister_t cb_unregister;
};

struct pool {
    struct instance *ins;
    size_t *chunk_idx;
    size_t n;
    uint64_t total;
    uint64_t next;      /* atomic */
    pthread_t *threads;
    int nthreads;
    int started;
};

struct coro_stacks {
    void *map[CORO_STACKS];
    size_t map_len;
    size_t usable;
    int next;
};

struct flush_call {
    struct instance *ins;
    const void *data;
    size_t size;
    char *tag;
    int rc;
};

static struct {
    const char *plugin_path;
    int workers;
    long repeat;
    long zero_copy;
    size_t stack_size;
    int hold;
    int verbose;
    struct instance *instances;
    size_t ninstances;
    size_t instances_cap;
    struct chunk *chunks;
    size_t nchunks;
    size_t chunks_cap;
} cfg;

static struct host_proxy proxy;
static struct flb_api host_api;

/* Counters, updated with __atomic builtins. */
static uint64_t st_flushes, st_bytes, st_records;
static uint64_t st_ok, st_retry, st_error, st_other;
static int host_failed;     /* set on an internal failure (OOM, coroutine) */

/* Signals: the handler only stores the number and writes to a pipe. */
static int sig_pipe[2] = {-1, -1};
static int sig_term;        /* SIGTERM/SIGINT number, or 0 */
static int sig_usr1;

static const char *prog = "flbhost";

/* A memset the compiler may not drop before free(). */
static void *(*const volatile poison_memset)(void *, int, size_t) = memset;

/* ------------------------------------------------------------------------ */
/* Small helpers.                                                           */

static void errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void errorf(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: error: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s -p PLUGIN.so [-w WORKERS] [-r REPEAT] [-s STACK_BYTES] [-z COPIES] [-x] [-v]\n"
            "          -i NAME [-o key=value ...] [-i NAME -o key=value ...]\n"
            "          [-c INSTANCE:TAG:CHUNKFILE ...]\n"
            "see build/flbhost/README.md\n", prog);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (!p) {
        errorf("out of memory");
        exit(1);
    }
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);

    if (!p) {
        errorf("out of memory");
        exit(1);
    }
    return p;
}

/* Grows *arr (of *cap elements of size elem) so that it holds need items. */
static void grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    size_t ncap;
    void *p;

    if (need <= *cap) {
        return;
    }
    ncap = *cap ? *cap * 2 : 4;
    while (ncap < need) {
        ncap *= 2;
    }
    if (ncap > SIZE_MAX / elem) {
        errorf("out of memory");
        exit(1);
    }
    p = realloc(*arr, ncap * elem);
    if (!p) {
        errorf("out of memory");
        exit(1);
    }
    memset((char *) p + *cap * elem, 0, (ncap - *cap) * elem);
    *arr = p;
    *cap = ncap;
}

static int parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (!s || *s == '\0') {
        return -1;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

/* CPU time (user + system, every thread) of the process so far. */
static double cpu_seconds(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        return 0;
    }
    return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6 +
           (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
}

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Looks a symbol up the way Fluent Bit does (dlerror() decides). */
static void *plugin_symbol(const char *name)
{
    void *s;

    dlerror();
    s = dlsym(proxy.dso, name);
    if (dlerror() != NULL) {
        return NULL;
    }
    return s;
}

/* ------------------------------------------------------------------------ */
/* Properties.                                                              */

/*
 * Expands ${VAR} from the environment (unset: empty), like Fluent Bit's
 * flb_env_var_translate.  Returns a malloc'd string, or NULL for "".
 */
static char *expand_value(const char *v)
{
    size_t cap = strlen(v) + 1, len = 0;
    char *out = xcalloc(1, cap);
    const char *p = v;

    while (*p) {
        const char *add = p;
        size_t alen = 1;
        const char *close;

        if (p[0] == '$' && p[1] == '{' && (close = strchr(p + 2, '}')) != NULL) {
            size_t nlen = (size_t) (close - (p + 2));
            char *name = xcalloc(1, nlen + 1);
            const char *env;

            memcpy(name, p + 2, nlen);
            env = getenv(name);
            free(name);
            add = env ? env : "";
            alen = strlen(add);
            p = close + 1;
        }
        else {
            p++;
        }
        if (len + alen + 1 > cap) {
            char *n;

            cap = (len + alen + 1) * 2;
            n = realloc(out, cap);
            if (!n) {
                free(out);
                errorf("out of memory");
                exit(1);
            }
            out = n;
        }
        memcpy(out + len, add, alen);
        len += alen;
        out[len] = '\0';
    }
    if (len == 0) {
        free(out);
        return NULL;
    }
    return out;
}

/*
 * Fluent Bit's core output keys (flb_output_set_property): they are consumed
 * by the engine and never stored where the plugin can read them.  The second
 * field says whether the key is only consumed when its value is not empty.
 */
static const struct {
    const char *key;
    int only_if_value;
} core_keys[] = {
    {"match", 0},
    {"match_regex", 1},
    {"alias", 1},
    {"log_level", 1},
    {"log_suppress_interval", 1},
    {"host", 0},
    {"port", 0},
    {"ipv6", 1},
    {"retry_limit", 0},
    {"tls", 1},
    {"tls.verify", 1},
    {"tls.verify_hostname", 1},
    {"tls.debug", 1},
    {"tls.vhost", 0},
    {"tls.ca_path", 0},
    {"tls.ca_file", 0},
    {"tls.crt_file", 0},
    {"tls.key_file", 0},
    {"tls.key_passwd", 0},
    {"tls.min_version", 0},
    {"tls.max_version", 0},
    {"tls.ciphers", 0},
    {"storage.total_limit_size", 1},
    {"workers", 1},
};

static int is_core_key(const char *key, const char *val)
{
    size_t i;

    if (strncasecmp(key, "net.", 4) == 0 && val) {
        return 1;
    }
    for (i = 0; i < sizeof(core_keys) / sizeof(core_keys[0]); i++) {
        if (strcasecmp(key, core_keys[i].key) == 0) {
            return !core_keys[i].only_if_value || val != NULL;
        }
    }
    return 0;
}

static void instance_set_property(struct instance *ins, const char *key, char *val)
{
    long n;

    if (is_core_key(key, val)) {
        if (strcasecmp(key, "workers") == 0) {
            if (parse_long(val, 0, MAX_WORKERS, &n) != 0) {
                errorf("instance %s: invalid workers '%s'", ins->name, val);
                exit(2);
            }
            ins->workers = (int) n;
        }
        else if (strcasecmp(key, "alias") == 0) {
            free(ins->alias);
            ins->alias = xstrdup(val);
        }
        free(val);
        return;
    }
    grow((void **) &ins->props, &ins->props_cap, ins->nprops + 1, sizeof(struct prop));
    ins->props[ins->nprops].key = xstrdup(key);
    ins->props[ins->nprops].val = val;
    ins->nprops++;
}

/* api->output_get_property: first match, case-insensitive, NULL if none. */
static const char *host_output_get_property(const char *key, void *o_ins)
{
    struct instance *ins = o_ins;
    const char *val = NULL;
    size_t i;

    if (key && ins) {
        for (i = 0; i < ins->nprops; i++) {
            if (strcasecmp(ins->props[i].key, key) == 0) {
                val = ins->props[i].val;
                break;
            }
        }
    }
    if (cfg.verbose) {
        fprintf(stderr, "%s: get_property instance=%s key=%s value=%s\n", prog,
                ins ? ins->name : "(null)", key ? key : "(null)",
                val ? val : "(null)");
    }
    return val;
}

/* ------------------------------------------------------------------------ */
/* Chunks.                                                                  */

static int read_file(const char *path, unsigned char **data, size_t *size)
{
    FILE *f;
    struct stat stbuf;
    unsigned char *buf;
    size_t len, got;

    f = fopen(path, "rb");
    if (!f) {
        errorf("cannot open chunk %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &stbuf) != 0 || !S_ISREG(stbuf.st_mode)) {
        errorf("chunk %s is not a regular file", path);
        fclose(f);
        return -1;
    }
    len = (size_t) stbuf.st_size;
    buf = malloc(len ? len : 1);
    if (!buf) {
        errorf("out of memory reading %s", path);
        fclose(f);
        return -1;
    }
    got = len ? fread(buf, 1, len, f) : 0;
    if (got != len || ferror(f)) {
        errorf("cannot read chunk %s", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    *data = buf;
    *size = len;
    return 0;
}

static int mp_read_be(const unsigned char *p, size_t n, size_t off, int width, uint64_t *out)
{
    uint64_t v = 0;
    int i;

    if (off > n || (size_t) width > n - off) {
        return -1;
    }
    for (i = 0; i < width; i++) {
        v = (v << 8) | p[off + (size_t) i];
    }
    *out = v;
    return 0;
}

/*
 * Returns the size of the msgpack object at p[0..n), or 0 if it is not a
 * complete object.  Iterative: it only tracks how many objects are pending.
 */
static size_t mp_skip(const unsigned char *p, size_t n)
{
    size_t off = 0;
    uint64_t pending = 1;

    while (pending > 0) {
        unsigned char b;
        uint64_t len = 0, items = 0, v;

        if (off >= n) {
            return 0;
        }
        b = p[off++];
        pending--;
        if (b <= 0x7f || b >= 0xe0) {
            /* fixint */
        }
        else if (b <= 0x8f) {
            items = 2 * (uint64_t) (b & 0x0f);
        }
        else if (b <= 0x9f) {
            items = b & 0x0f;
        }
        else if (b <= 0xbf) {
            len = b & 0x1f;
        }
        else {
            switch (b) {
            case 0xc0: case 0xc2: case 0xc3:
                break;
            case 0xc4: case 0xd9:
                if (mp_read_be(p, n, off, 1, &v)) return 0;
                off += 1; len = v;
                break;
            case 0xc5: case 0xda:
                if (mp_read_be(p, n, off, 2, &v)) return 0;
                off += 2; len = v;
                break;
            case 0xc6: case 0xdb:
                if (mp_read_be(p, n, off, 4, &v)) return 0;
                off += 4; len = v;
                break;
            case 0xc7:
                if (mp_read_be(p, n, off, 1, &v)) return 0;
                off += 1; len = v + 1;
                break;
            case 0xc8:
                if (mp_read_be(p, n, off, 2, &v)) return 0;
                off += 2; len = v + 1;
                break;
            case 0xc9:
                if (mp_read_be(p, n, off, 4, &v)) return 0;
                off += 4; len = v + 1;
                break;
            case 0xcc: case 0xd0: len = 1; break;
            case 0xcd: case 0xd1: len = 2; break;
            case 0xca: case 0xce: case 0xd2: len = 4; break;
            case 0xcb: case 0xcf: case 0xd3: len = 8; break;
            case 0xd4: len = 2; break;
            case 0xd5: len = 3; break;
            case 0xd6: len = 5; break;
            case 0xd7: len = 9; break;
            case 0xd8: len = 17; break;
            case 0xdc:
                if (mp_read_be(p, n, off, 2, &v)) return 0;
                off += 2; items = v;
                break;
            case 0xdd:
                if (mp_read_be(p, n, off, 4, &v)) return 0;
                off += 4; items = v;
                break;
            case 0xde:
                if (mp_read_be(p, n, off, 2, &v)) return 0;
                off += 2; items = 2 * v;
                break;
            case 0xdf:
                if (mp_read_be(p, n, off, 4, &v)) return 0;
                off += 4; items = 2 * v;
                break;
            default: /* 0xc1: never used */
                return 0;
            }
        }
        if (len > n - off) {
            return 0;
        }
        off += (size_t) len;
        pending += items;
        /* every pending object needs at least one byte */
        if (pending > n - off) {
            return 0;
        }
    }
    return off;
}

/* Counts the top-level objects of a chunk; warns if it does not parse. */
static uint64_t count_records(const struct chunk *ck)
{
    size_t off = 0, used;
    uint64_t count = 0;

    while (off < ck->size) {
        used = mp_skip(ck->data + off, ck->size - off);
        if (used == 0) {
            fprintf(stderr, "%s: warning: chunk %s is not well-formed msgpack "
                    "after %llu objects (byte %zu of %zu); flushing it anyway\n",
                    prog, ck->file, (unsigned long long) count, off, ck->size);
            break;
        }
        off += used;
        count++;
    }
    return count;
}

static struct instance *resolve_instance(const char *spec)
{
    long idx;
    size_t i;

    if (parse_long(spec, 0, LONG_MAX, &idx) == 0) {
        return (size_t) idx < cfg.ninstances ? &cfg.instances[idx] : NULL;
    }
    for (i = 0; i < cfg.ninstances; i++) {
        if (cfg.instances[i].alias && strcmp(cfg.instances[i].alias, spec) == 0) {
            return &cfg.instances[i];
        }
    }
    for (i = 0; i < cfg.ninstances; i++) {
        char plain[300];

        snprintf(plain, sizeof(plain), "%s.%d", cfg.instances[i].plugin_name,
                 cfg.instances[i].index);
        if (strcasecmp(plain, spec) == 0) {
            return &cfg.instances[i];
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Coroutines: each flush runs on a small stack, as in Fluent Bit.          */

static __thread struct flush_call *tls_call;
static __thread ucontext_t tls_caller;

static int stacks_init(struct coro_stacks *s, size_t usable)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t pg = page > 0 ? (size_t) page : 4096;
    size_t rounded = (usable + pg - 1) / pg * pg;
    int i;

    memset(s, 0, sizeof(*s));
    s->usable = usable;
    s->map_len = rounded + pg; /* one guard page below the stack */
    for (i = 0; i < CORO_STACKS; i++) {
        void *m = mmap(NULL, s->map_len, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);

        if (m == MAP_FAILED) {
            errorf("mmap coroutine stack: %s", strerror(errno));
            return -1;
        }
        s->map[i] = m;
        if (mprotect(m, pg, PROT_NONE) != 0) {
            errorf("mprotect guard page: %s", strerror(errno));
            return -1;
        }
    }
    return 0;
}

static void stacks_free(struct coro_stacks *s)
{
    int i;

    for (i = 0; i < CORO_STACKS; i++) {
        if (s->map[i]) {
            munmap(s->map[i], s->map_len);
            s->map[i] = NULL;
        }
    }
}

static int invoke_flush(struct flush_call *c)
{
    struct flbgo_output_plugin *pl = proxy.plugin;

    if (pl->cb_flush_ctx) {
        return pl->cb_flush_ctx(c->ins->ctx->remote_context, c->data, c->size, c->tag);
    }
    return pl->cb_flush(c->data, c->size, c->tag);
}

static void coro_entry(void)
{
    struct flush_call *c = tls_call;

    c->rc = invoke_flush(c);
    /* returning resumes tls_caller through uc_link */
}

static int run_in_coro(struct coro_stacks *s, struct flush_call *c)
{
    ucontext_t co;
    char *top;

    if (getcontext(&co) != 0) {
        errorf("getcontext: %s", strerror(errno));
        return -1;
    }
    top = (char *) s->map[s->next] + s->map_len;
    s->next = (s->next + 1) % CORO_STACKS;
    co.uc_stack.ss_sp = top - s->usable;
    co.uc_stack.ss_size = s->usable;
    co.uc_stack.ss_flags = 0;
    co.uc_link = &tls_caller;
    makecontext(&co, coro_entry, 0);
    tls_call = c;
    if (swapcontext(&tls_caller, &co) != 0) {
        errorf("swapcontext: %s", strerror(errno));
        return -1;
    }
    tls_call = NULL;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Flushing.                                                                */

static int stop_requested(void)
{
    return __atomic_load_n(&sig_term, __ATOMIC_SEQ_CST) != 0 ||
           __atomic_load_n(&host_failed, __ATOMIC_SEQ_CST) != 0;
}

static void fail_host(void)
{
    __atomic_store_n(&host_failed, 1, __ATOMIC_SEQ_CST);
}

static void count_flush(const struct chunk *ck, int rc);

static void do_flush(struct coro_stacks *s, struct chunk *ck)
{
    struct flush_call call;
    unsigned char *buf = NULL; /* the private copies, without -z */
    char *tag = NULL;
    size_t taglen = strlen(ck->tag);
    int failed;

    call.ins = ck->ins;
    call.size = ck->size;
    call.rc = FLB_ERROR;
    if (cfg.zero_copy > 0) {
        uint64_t k = __atomic_fetch_add(&ck->next, 1, __ATOMIC_RELAXED);

        call.data = ck->copies[k % (uint64_t) cfg.zero_copy];
        call.tag = ck->tag;
    } else {
        buf = malloc(ck->size ? ck->size : 1);
        tag = malloc(taglen + 1);
        if (!buf || !tag) {
            errorf("out of memory for a flush");
            free(buf);
            free(tag);
            fail_host();
            return;
        }
        memcpy(buf, ck->data, ck->size);
        memcpy(tag, ck->tag, taglen + 1);
        call.data = buf;
        call.tag = tag;
    }
    failed = run_in_coro(s, &call) != 0;
    if (buf) {
        /* The plugin may not keep data or tag: poison them before free. */
        poison_memset(buf, 0xAA, ck->size);
        poison_memset(tag, 0xAA, taglen + 1);
        free(buf);
        free(tag);
    }
    if (failed) {
        fail_host();
        return;
    }
    count_flush(ck, call.rc);
}

/* Counts a flush of ck that returned rc. */
static void count_flush(const struct chunk *ck, int rc)
{
    __atomic_add_fetch(&st_flushes, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&st_bytes, (uint64_t) ck->size, __ATOMIC_RELAXED);
    __atomic_add_fetch(&st_records, ck->records, __ATOMIC_RELAXED);
    switch (rc) {
    case FLB_OK:
        __atomic_add_fetch(&st_ok, 1, __ATOMIC_RELAXED);
        break;
    case FLB_RETRY:
        __atomic_add_fetch(&st_retry, 1, __ATOMIC_RELAXED);
        break;
    case FLB_ERROR:
        __atomic_add_fetch(&st_error, 1, __ATOMIC_RELAXED);
        break;
    default: /* Fluent Bit treats any other value as FLB_ERROR */
        __atomic_add_fetch(&st_error, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&st_other, 1, __ATOMIC_RELAXED);
        break;
    }
    if (cfg.repeat == 1) {
        printf("flush instance=%s tag=%s chunk=%s rc=%d\n", ck->ins->name,
               ck->tag, ck->file, rc);
    }
}

static void *worker_main(void *arg)
{
    struct pool *p = arg;
    struct coro_stacks s;

    if (stacks_init(&s, cfg.stack_size) != 0) {
        stacks_free(&s);
        fail_host();
        return NULL;
    }
    while (!stop_requested()) {
        uint64_t k = __atomic_fetch_add(&p->next, 1, __ATOMIC_SEQ_CST);

        if (k >= p->total) {
            break;
        }
        do_flush(&s, &cfg.chunks[p->chunk_idx[k % p->n]]);
    }
    stacks_free(&s);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Signals and hold.                                                        */

static void on_signal(int signo)
{
    int saved = errno;
    ssize_t w;

    if (signo == SIGUSR1) {
        __atomic_store_n(&sig_usr1, signo, __ATOMIC_SEQ_CST);
    }
    else {
        __atomic_store_n(&sig_term, signo, __ATOMIC_SEQ_CST);
    }
    if (sig_pipe[1] >= 0) {
        w = write(sig_pipe[1], "s", 1);
        (void) w;
    }
    errno = saved;
}

static int install_signals(void)
{
    struct sigaction sa;
    const int sigs[] = {SIGTERM, SIGINT, SIGUSR1};
    size_t i;

    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        errorf("pipe2: %s", strerror(errno));
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        if (sigaction(sigs[i], &sa, NULL) != 0) {
            errorf("sigaction: %s", strerror(errno));
            return -1;
        }
    }
    return 0;
}

static const char *signame(int signo)
{
    switch (signo) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    default: return "signal";
    }
}

static void hold(void)
{
    const char *by = NULL;
    char buf[256];

    printf("%s: holding\n", prog);
    fflush(stdout);
    while (by == NULL) {
        struct pollfd fds[2];
        int n;

        if (__atomic_load_n(&sig_term, __ATOMIC_SEQ_CST)) {
            by = signame(__atomic_load_n(&sig_term, __ATOMIC_SEQ_CST));
            break;
        }
        if (__atomic_load_n(&sig_usr1, __ATOMIC_SEQ_CST)) {
            by = "SIGUSR1";
            break;
        }
        fds[0].fd = STDIN_FILENO;
        fds[0].events = POLLIN;
        fds[0].revents = 0;
        fds[1].fd = sig_pipe[0];
        fds[1].events = POLLIN;
        fds[1].revents = 0;
        n = poll(fds, 2, -1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            errorf("poll: %s", strerror(errno));
            by = "error";
            break;
        }
        if (fds[1].revents) {
            while (read(sig_pipe[0], buf, sizeof(buf)) > 0) {
            }
            continue;
        }
        if (fds[0].revents & POLLNVAL) {
            by = "eof";
            break;
        }
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = read(STDIN_FILENO, buf, sizeof(buf));

            if (r < 0 && errno == EINTR) {
                continue;
            }
            if (r <= 0) {
                by = "eof";
            }
            else if (memchr(buf, '\n', (size_t) r) != NULL) {
                by = "stdin";
            }
        }
    }
    printf("%s: released by=%s\n", prog, by);
}

/* ------------------------------------------------------------------------ */
/* The engine thread: Init, flushes, exit (as Fluent Bit's engine does).    */

static void exit_instance(struct instance *ins)
{
    struct flbgo_output_plugin *pl = proxy.plugin;
    const char *func = "none";
    int rc = 0;

    if (proxy.cb_pre_exit) {
        proxy.cb_pre_exit(0);
    }
    if (pl->cb_exit_ctx) {
        func = "FLBPluginExitCtx";
        rc = pl->cb_exit_ctx(ins->ctx->remote_context);
    }
    else if (pl->cb_exit) {
        func = "FLBPluginExit";
        rc = pl->cb_exit();
    }
    printf("%s: exit instance=%s func=%s rc=%d\n", prog, ins->name, func, rc);
}

static void *engine_main(void *arg)
{
    int *status = arg;
    struct flbgo_output_plugin *pl = proxy.plugin;
    struct pool *pools = NULL;
    struct coro_stacks s;
    size_t i, j, npools = 0;
    double t0, t1, c0, c1;
    long r;

    *status = 0;
    memset(&s, 0, sizeof(s));

    /* Init, once per instance in order, all with the same plugin pointer. */
    for (i = 0; i < cfg.ninstances; i++) {
        struct instance *ins = &cfg.instances[i];
        int rc;

        pl->api = &host_api;
        pl->o_ins = ins;
        pl->context = ins->ctx;
        rc = pl->cb_init(pl);
        printf("%s: init instance=%s rc=%d\n", prog, ins->name, rc);
        if (rc <= 0) {
            errorf("FLBPluginInit failed for instance %s (rc=%d); "
                   "Fluent Bit would not start", ins->name, rc);
            *status = 1;
            goto shutdown;
        }
        ins->initialized = 1;
    }
    if (proxy.cb_pre_run) {
        for (i = 0; i < cfg.ninstances; i++) {
            proxy.cb_pre_run(0);
        }
    }

    if (stacks_init(&s, cfg.stack_size) != 0) {
        fail_host();
        *status = 1;
        goto shutdown;
    }

    /* Worker pools, one per instance with workers > 0. */
    pools = xcalloc(cfg.ninstances ? cfg.ninstances : 1, sizeof(*pools));
    t0 = now_seconds();
    c0 = cpu_seconds();
    for (i = 0; i < cfg.ninstances; i++) {
        struct instance *ins = &cfg.instances[i];
        struct pool *p;
        int w;

        if (ins->workers <= 0) {
            continue;
        }
        p = &pools[npools++];
        p->ins = ins;
        p->chunk_idx = xcalloc(cfg.nchunks ? cfg.nchunks : 1, sizeof(size_t));
        for (j = 0; j < cfg.nchunks; j++) {
            if (cfg.chunks[j].ins == ins) {
                p->chunk_idx[p->n++] = j;
            }
        }
        p->total = (uint64_t) p->n * (uint64_t) cfg.repeat;
        p->threads = xcalloc((size_t) ins->workers, sizeof(pthread_t));
        for (w = 0; w < ins->workers; w++) {
            int err = pthread_create(&p->threads[w], NULL, worker_main, p);

            if (err != 0) {
                errorf("pthread_create: %s", strerror(err));
                fail_host();
                break;
            }
            p->nthreads++;
        }
        p->started = 1;
    }

    /* Instances without workers: one flush at a time on this thread. */
    for (r = 0; r < cfg.repeat && !stop_requested(); r++) {
        for (j = 0; j < cfg.nchunks && !stop_requested(); j++) {
            if (cfg.chunks[j].ins->workers <= 0) {
                do_flush(&s, &cfg.chunks[j]);
            }
        }
    }
    for (i = 0; i < npools; i++) {
        int w;

        for (w = 0; w < pools[i].nthreads; w++) {
            pthread_join(pools[i].threads[w], NULL);
        }
        free(pools[i].threads);
        free(pools[i].chunk_idx);
    }
    free(pools);
    t1 = now_seconds();
    c1 = cpu_seconds();

    printf("%s: rc_ok=%llu rc_retry=%llu rc_error=%llu rc_other=%llu\n", prog,
           (unsigned long long) st_ok, (unsigned long long) st_retry,
           (unsigned long long) st_error, (unsigned long long) st_other);
    printf("%s: flushes=%llu bytes=%llu records=%llu seconds=%.6f cpu_seconds=%.6f\n", prog,
           (unsigned long long) st_flushes, (unsigned long long) st_bytes,
           (unsigned long long) st_records, t1 - t0, c1 - c0);
    if (__atomic_load_n(&sig_term, __ATOMIC_SEQ_CST)) {
        fprintf(stderr, "%s: %s received: stopping\n", prog,
                signame(__atomic_load_n(&sig_term, __ATOMIC_SEQ_CST)));
    }
    if (__atomic_load_n(&host_failed, __ATOMIC_SEQ_CST)) {
        *status = 1;
    }
    else if (cfg.hold) {
        hold();
    }

shutdown:
    /* Exit, per instance that initialised, after the workers stopped. */
    for (i = 0; i < cfg.ninstances; i++) {
        if (cfg.instances[i].initialized) {
            exit_instance(&cfg.instances[i]);
        }
    }
    stacks_free(&s);
    fflush(stdout);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Command line and main.                                                   */

static struct instance *new_instance(const char *name)
{
    struct instance *ins;

    grow((void **) &cfg.instances, &cfg.instances_cap, cfg.ninstances + 1,
         sizeof(struct instance));
    ins = &cfg.instances[cfg.ninstances];
    memset(ins, 0, sizeof(*ins));
    ins->index = (int) cfg.ninstances;
    ins->plugin_name = xstrdup(name);
    ins->workers = -1;
    snprintf(ins->name, sizeof(ins->name), "%s.%d", name, ins->index);
    cfg.ninstances++;
    return ins;
}

static int parse_args(int argc, char **argv)
{
    int opt;
    long n;
    struct instance *cur = NULL;

    cfg.workers = 0;
    cfg.repeat = 1;
    cfg.stack_size = DEFAULT_STACK_SIZE;
    opterr = 0;
    while ((opt = getopt(argc, argv, "+:p:w:r:s:z:xvi:o:c:h")) != -1) {
        switch (opt) {
        case 'p':
            cfg.plugin_path = optarg;
            break;
        case 'w':
            if (parse_long(optarg, 0, MAX_WORKERS, &n) != 0) {
                errorf("invalid -w '%s' (0..%d)", optarg, MAX_WORKERS);
                return -1;
            }
            cfg.workers = (int) n;
            break;
        case 'r':
            if (parse_long(optarg, 1, LONG_MAX, &cfg.repeat) != 0) {
                errorf("invalid -r '%s' (>= 1)", optarg);
                return -1;
            }
            break;
        case 's':
            if (parse_long(optarg, MIN_STACK_SIZE, 64L * 1024 * 1024, &n) != 0) {
                errorf("invalid -s '%s' (%d..67108864)", optarg, MIN_STACK_SIZE);
                return -1;
            }
            cfg.stack_size = (size_t) n;
            break;
        case 'z':
            if (parse_long(optarg, 1, 64, &cfg.zero_copy) != 0) {
                errorf("invalid -z '%s' (1..64)", optarg);
                return -1;
            }
            break;
        case 'x':
            cfg.hold = 1;
            break;
        case 'v':
            cfg.verbose = 1;
            break;
        case 'i':
            if (optarg[0] == '\0') {
                errorf("-i needs a plugin name");
                return -1;
            }
            cur = new_instance(optarg);
            break;
        case 'o': {
            const char *eq = strchr(optarg, '=');
            char *key;

            if (!cur) {
                errorf("-o %s comes before any -i", optarg);
                return -1;
            }
            if (!eq || eq == optarg) {
                errorf("-o wants key=value, got '%s'", optarg);
                return -1;
            }
            key = xcalloc(1, (size_t) (eq - optarg) + 1);
            memcpy(key, optarg, (size_t) (eq - optarg));
            instance_set_property(cur, key, expand_value(eq + 1));
            free(key);
            break;
        }
        case 'c': {
            char *spec = optarg;
            char *c1 = strchr(spec, ':');
            char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
            struct chunk *ck;

            if (!c1 || !c2 || c1 == spec || c2 == c1 + 1 || c2[1] == '\0') {
                errorf("-c wants INSTANCE:TAG:FILE, got '%s'", spec);
                return -1;
            }
            grow((void **) &cfg.chunks, &cfg.chunks_cap, cfg.nchunks + 1,
                 sizeof(struct chunk));
            ck = &cfg.chunks[cfg.nchunks++];
            ck->spec_instance = xcalloc(1, (size_t) (c1 - spec) + 1);
            memcpy(ck->spec_instance, spec, (size_t) (c1 - spec));
            ck->tag = xcalloc(1, (size_t) (c2 - c1));
            memcpy(ck->tag, c1 + 1, (size_t) (c2 - c1 - 1));
            ck->file = xstrdup(c2 + 1);
            break;
        }
        case 'h':
            usage(stdout);
            exit(0);
        case ':':
            errorf("-%c needs an argument", optopt);
            return -1;
        default:
            errorf("unknown option -%c", optopt);
            return -1;
        }
    }
    if (optind < argc) {
        errorf("unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (!cfg.plugin_path) {
        errorf("-p PLUGIN.so is required");
        return -1;
    }
    if (cfg.ninstances == 0) {
        errorf("at least one -i NAME is required");
        return -1;
    }
    return 0;
}

static int finish_config(void)
{
    size_t i;

    for (i = 0; i < cfg.ninstances; i++) {
        struct instance *ins = &cfg.instances[i];

        if (ins->alias) {
            snprintf(ins->name, sizeof(ins->name), "%s", ins->alias);
        }
        if (ins->workers < 0) {
            ins->workers = cfg.workers;
        }
    }
    for (i = 0; i < cfg.nchunks; i++) {
        struct chunk *ck = &cfg.chunks[i];

        ck->ins = resolve_instance(ck->spec_instance);
        if (!ck->ins) {
            errorf("-c %s:...: no such instance (use an index, alias or NAME.N)",
                   ck->spec_instance);
            return 2;
        }
        if (read_file(ck->file, &ck->data, &ck->size) != 0) {
            return 1;
        }
        ck->records = count_records(ck);
        if (cfg.zero_copy > 0) {
            long k;

            ck->copies = xcalloc((size_t) cfg.zero_copy, sizeof(*ck->copies));
            for (k = 0; k < cfg.zero_copy; k++) {
                ck->copies[k] = xcalloc(1, ck->size ? ck->size : 1);
                memcpy(ck->copies[k], ck->data, ck->size);
            }
        }
    }
    return 0;
}

static void free_config(void)
{
    size_t i, j;

    for (i = 0; i < cfg.ninstances; i++) {
        struct instance *ins = &cfg.instances[i];

        for (j = 0; j < ins->nprops; j++) {
            free(ins->props[j].key);
            free(ins->props[j].val);
        }
        free(ins->props);
        free(ins->plugin_name);
        free(ins->alias);
        free(ins->ctx);
    }
    free(cfg.instances);
    for (i = 0; i < cfg.nchunks; i++) {
        free(cfg.chunks[i].spec_instance);
        free(cfg.chunks[i].tag);
        free(cfg.chunks[i].file);
        free(cfg.chunks[i].data);
        if (cfg.chunks[i].copies) {
            for (j = 0; j < (size_t) cfg.zero_copy; j++) {
                free(cfg.chunks[i].copies[j]);
            }
            free(cfg.chunks[i].copies);
        }
    }
    free(cfg.chunks);
}

/* dlopen, PreRegister, Register and symbol lookup.  Returns 0 or 1. */
static int load_plugin(void)
{
    struct flbgo_output_plugin *pl;
    cb_pre_register_t pre_register;
    cb_register_t reg;
    struct flb_plugin_proxy_def *def;
    size_t i;
    int ret;

    proxy.dso = dlopen(cfg.plugin_path, RTLD_LAZY);
    if (!proxy.dso) {
        errorf("cannot load plugin %s: %s", cfg.plugin_path, dlerror());
        return 1;
    }

    pre_register = (cb_pre_register_t) plugin_symbol("FLBPluginPreRegister");
    if (pre_register) {
        ret = pre_register(0);
        if (ret == -1) {
            errorf("FLBPluginPreRegister returned -1");
            return 1;
        }
    }
    reg = (cb_register_t) plugin_symbol("FLBPluginRegister");
    if (!reg) {
        errorf("plugin does not export FLBPluginRegister");
        return 1;
    }
    def = calloc(1, DEF_ALLOC_SIZE > sizeof(*def) ? DEF_ALLOC_SIZE : sizeof(*def));
    if (!def) {
        errorf("out of memory");
        return 1;
    }
    ret = reg(def);
    if (ret == -1) {
        /* Fluent Bit frees the def and never calls FLBPluginUnregister. */
        free(def);
        errorf("FLBPluginRegister returned -1");
        return 1;
    }
    proxy.def = def;
    proxy.cb_unregister = (cb_unregister_t) plugin_symbol("FLBPluginUnregister");
    printf("%s: register name=%s type=%d proxy=%d flags=%d event_type=%d "
           "description=%s\n", prog, def->name ? def->name : "(null)",
           def->type, def->proxy, def->flags, def->event_type,
           def->description ? def->description : "(null)");
    if (def->proxy != FLB_PROXY_GOLANG || def->type != FLB_PROXY_OUTPUT_PLUGIN) {
        errorf("plugin registered type=%d proxy=%d; a Go output plugin must "
               "register type=%d proxy=%d", def->type, def->proxy,
               FLB_PROXY_OUTPUT_PLUGIN, FLB_PROXY_GOLANG);
        return 1;
    }
    if (!def->name || def->name[0] == '\0') {
        errorf("plugin registered without a name");
        return 1;
    }

    pl = calloc(1, sizeof(*pl));
    if (!pl) {
        errorf("out of memory");
        return 1;
    }
    proxy.plugin = pl;
    pl->cb_init = (cb_init_t) plugin_symbol("FLBPluginInit");
    if (!pl->cb_init) {
        errorf("[go proxy]: could not load FLBPluginInit symbol");
        return 1;
    }
    pl->cb_flush = (cb_flush_t) plugin_symbol("FLBPluginFlush");
    pl->cb_flush_ctx = (cb_flush_ctx_t) plugin_symbol("FLBPluginFlushCtx");
    pl->cb_exit = (cb_exit_t) plugin_symbol("FLBPluginExit");
    pl->cb_exit_ctx = (cb_exit_ctx_t) plugin_symbol("FLBPluginExitCtx");
    pl->name = xstrdup(def->name);
    if (!pl->cb_flush && !pl->cb_flush_ctx) {
        /* Fluent Bit would call a NULL pointer at the first flush. */
        errorf("plugin exports neither FLBPluginFlushCtx nor FLBPluginFlush");
        return 1;
    }
    proxy.cb_pre_run = (cb_pre_run_t) plugin_symbol("FLBPluginOutputPreRun");
    proxy.cb_pre_exit = (cb_pre_exit_t) plugin_symbol("FLBPluginOutputPreExit");

    for (i = 0; i < cfg.ninstances; i++) {
        struct instance *ins = &cfg.instances[i];

        if (strcasecmp(ins->plugin_name, def->name) != 0) {
            errorf("invalid output plugin '%s': the plugin registered '%s'",
                   ins->plugin_name, def->name);
            return 1;
        }
        if (!ins->alias) {
            /* Fluent Bit names an instance after the registered name. */
            snprintf(ins->name, sizeof(ins->name), "%s.%d", def->name, ins->index);
        }
        ins->ctx = calloc(1, sizeof(*ins->ctx));
        if (!ins->ctx) {
            errorf("out of memory");
            return 1;
        }
        ins->ctx->proxy = &proxy;
    }
    return 0;
}

int main(int argc, char **argv)
{
    pthread_t engine;
    int status = 0, engine_status = 0, err;

    setvbuf(stdout, NULL, _IOLBF, 0);
    host_api.output_get_property = host_output_get_property;

    if (parse_args(argc, argv) != 0) {
        usage(stderr);
        free_config();
        return 2;
    }
    status = finish_config();
    if (status != 0) {
        free_config();
        return status;
    }
    if (install_signals() != 0) {
        free_config();
        return 1;
    }

    status = load_plugin();
    if (status == 0) {
        err = pthread_create(&engine, NULL, engine_main, &engine_status);
        if (err != 0) {
            errorf("pthread_create: %s", strerror(err));
            status = 1;
        }
        else {
            pthread_join(engine, NULL);
            status = engine_status;
        }
    }

    /* Unregister once, after every instance exited, then dlclose. */
    if (proxy.def && proxy.cb_unregister) {
        proxy.cb_unregister(proxy.def);
        printf("%s: unregister\n", prog);
    }
    if (proxy.dso) {
        dlclose(proxy.dso);
    }
    if (proxy.plugin) {
        free(proxy.plugin->name);
        free(proxy.plugin);
    }
    free(proxy.def);
    free_config();
    printf("%s: done status=%d\n", prog, status);
    fflush(stdout);
    return status;
}
