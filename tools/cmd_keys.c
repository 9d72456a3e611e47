/* cmd_keys.c - `sysimage keygen`, `keyring create`, `keyring check`. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "commands.h"
#include "fsutil.h"
#include "key.h"
#include "keyring.h"
#include "result.h"
#include "sha256.h"
#include "sigfile.h"

#define PATH_CAP 4096
#define CHECK_MAX_FILES 16

/* Strict decimal integer in [min, max]. */
static bool parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!s || !*s)
        return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool path_with_suffix(char *out, const char *path, const char *suffix)
{
    return (size_t)snprintf(out, PATH_CAP, "%s%s", path, suffix) < PATH_CAP;
}

/* ---------------------------------------------------------------- keygen */

static const char keygen_usage[] =
    "usage: sysimage keygen [--rsa BITS] OUT\n\n"
    "Generate a signing key pair: OUT.key (private PEM, mode 0600) and OUT.pub\n"
    "(SubjectPublicKeyInfo PEM). Default ECDSA P-256; --rsa BITS makes an RSA key\n"
    "(BITS >= 2048) used with PSS/SHA-256. Refuses to overwrite an existing OUT.key.\n"
    "Prints the key id (SHA-256 of the DER public key).\n";

int cmd_keygen(int argc, char **argv)
{
    if (si_tool_wants_help(argc, argv, keygen_usage))
        return SI_OK;
    static const struct option opts[] = {{"rsa", required_argument, NULL, 'r'}, {0, 0, 0, 0}};
    int64_t bits = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'r') {
            if (!parse_i64(optarg, SI_KEY_MIN_RSA_BITS, 8192, &bits))
                return si_tool_usage_error("keygen", "--rsa: BITS must be 2048 to 8192");
        } else {
            return si_tool_usage_error("keygen", "unknown option");
        }
    }
    if (argc - optind != 1)
        return si_tool_usage_error("keygen", "expected exactly one OUT argument");
    const char *out = argv[optind];
    char keypath[PATH_CAP], pubpath[PATH_CAP];
    if (!path_with_suffix(keypath, out, ".key") || !path_with_suffix(pubpath, out, ".pub"))
        return si_tool_usage_error("keygen", "OUT path too long");
    struct stat st;
    if (stat(keypath, &st) == 0) {
        fprintf(stderr, "sysimage keygen: %s exists, refusing to overwrite a private key\n",
                keypath);
        return SI_ERR_EXISTS;
    }
    si_err err = {0};
    si_key *k = NULL;
    si_result r = si_key_generate(bits ? SI_KEY_RSA : SI_KEY_ECDSA_P256, (unsigned)bits, &k, &err);
    if (r != SI_OK)
        return si_tool_fail(&err);
    char *priv = NULL, *pub = NULL;
    r = si_key_private_pem(k, &priv, &err);
    if (r == SI_OK)
        r = si_key_public_pem(k, &pub, &err);
    if (r == SI_OK) {
        const char *failed = keypath;
        int rc = si_write_file_atomic(keypath, priv, strlen(priv), 0600);
        if (rc == 0) {
            failed = pubpath;
            rc = si_write_file_atomic(pubpath, pub, strlen(pub), 0644);
        }
        if (rc < 0)
            r = si_err_set(&err, SI_ERR_IO, "%s: %s", failed, strerror(-rc));
    }
    if (priv) {
        memset(priv, 0, strlen(priv));
        free(priv);
    }
    free(pub);
    if (r == SI_OK)
        printf("%s %s %s\n", keypath, si_key_algorithm(k), si_key_id(k));
    si_key_free(k);
    return r == SI_OK ? SI_OK : si_tool_fail(&err);
}

/* ---------------------------------------------------------------- keyring create */

static const char create_usage[] =
    "usage: sysimage keyring create --type TYPE [--expiry EPOCH] [--model MODEL]\n"
    "                               [--version N] [--blacklist BLACKLIST.keyring]\n"
    "                               [--sign-with PARENT.key] OUT.keyring [PUB...]\n\n"
    "Write the keyring OUT.keyring holding the public keys PUB... (PEM files; none\n"
    "makes an empty keyring, e.g. an empty blacklist) and sign it into\n"
    "OUT.keyring.sig with PARENT.key. TYPE is archive-master (never signed),\n"
    "image-master (signed by archive-master), image-signing or blacklist (signed by\n"
    "image-master) or device-signing (signed by image-signing).\n"
    "  --expiry EPOCH   seconds since 1970 after which the keyring is invalid\n"
    "  --model MODEL    restrict the keyring to one device model\n"
    "  --version N      revocation order (integer >= 0, default 0): devices refuse a\n"
    "                   keyring of a lower version than one they verified\n"
    "  --blacklist FILE (image-signing) name the blacklist.keyring issued with this\n"
    "                   keyring by its sha256: devices then refuse to go on without\n"
    "                   exactly that blacklist (docs/security.md)\n";

/* --blacklist FILE: it must be a blacklist keyring; its sha256 goes in kr. */
static si_result name_blacklist(si_keyring *kr, const char *path, si_err *err)
{
    si_keyring *bl = NULL;
    si_result r = si_keyring_load(path, &bl, err);
    if (r != SI_OK)
        return si_err_prefix(err, "--blacklist");
    bool is_bl = bl->type == SI_KR_BLACKLIST;
    si_keyring_free(bl);
    if (!is_bl)
        return si_err_set(err, SI_ERR_KEYRING_TYPE, "--blacklist %s: not a blacklist keyring",
                          path);
    uint8_t d[SI_SHA256_LEN];
    int e = si_sha256_file(path, d, NULL);
    if (e < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(-e));
    si_hex_encode(d, sizeof(d), kr->blacklist_sha256);
    return SI_OK;
}

typedef struct create_args {
    const char *type, *model, *signer, *blacklist, *out;
    si_keyring_type kt;
    int64_t expiry, version;
    bool has_expiry;
} create_args;

/* getopt_long into a; -1 to go on, else the exit code. */
static int parse_create_args(int argc, char **argv, create_args *a)
{
    static const struct option opts[] = {{"type", required_argument, NULL, 't'},
                                         {"expiry", required_argument, NULL, 'e'},
                                         {"model", required_argument, NULL, 'm'},
                                         {"sign-with", required_argument, NULL, 's'},
                                         {"version", required_argument, NULL, 'v'},
                                         {"blacklist", required_argument, NULL, 'b'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 't': a->type = optarg; break;
        case 'm': a->model = optarg; break;
        case 's': a->signer = optarg; break;
        case 'b': a->blacklist = optarg; break;
        case 'e':
            if (!parse_i64(optarg, 1, 9007199254740992LL, &a->expiry))
                return si_tool_usage_error("keyring create",
                                           "--expiry: EPOCH must be a positive integer");
            a->has_expiry = true;
            break;
        case 'v':
            if (!parse_i64(optarg, 0, 9007199254740992LL, &a->version))
                return si_tool_usage_error("keyring create",
                                           "--version: N must be an integer >= 0");
            break;
        default:
            return si_tool_usage_error("keyring create", "unknown option");
        }
    }
    return -1;
}

/* The combinations that make sense; -1 to go on, else the exit code. */
static int check_create_args(int argc, char **argv, create_args *a)
{
    if (!a->type)
        return si_tool_usage_error("keyring create", "--type is required");
    if (si_keyring_type_parse(a->type, &a->kt) != SI_OK)
        return si_tool_usage_error("keyring create", "--type: unknown keyring type");
    if (a->kt == SI_KR_ARCHIVE_MASTER && a->signer)
        return si_tool_usage_error("keyring create", "an archive-master keyring is not signed");
    if (a->kt != SI_KR_ARCHIVE_MASTER && !a->signer)
        return si_tool_usage_error("keyring create",
                                   "--sign-with PARENT.key is required for this type");
    if (a->model && (!*a->model || strlen(a->model) >= SI_MODEL_MAX))
        return si_tool_usage_error("keyring create", "--model: 1 to 127 characters");
    if (a->blacklist && a->kt != SI_KR_IMAGE_SIGNING)
        return si_tool_usage_error("keyring create",
                                   "--blacklist: only an image-signing keyring names one");
    if (argc - optind < 1)
        return si_tool_usage_error("keyring create", "expected OUT.keyring");
    a->out = argv[optind];
    return -1;
}

/* The keyring of a with the public keys pubs[0..npubs). */
static si_result build_keyring(const create_args *a, char **pubs, int npubs, si_keyring **out,
                               si_err *err)
{
    si_keyring *kr = si_keyring_new(a->kt);
    if (!kr)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    kr->has_expiry = a->has_expiry;
    kr->expiry = a->expiry;
    kr->version = a->version;
    if (a->model)
        snprintf(kr->model, sizeof(kr->model), "%s", a->model);
    si_result r = a->blacklist ? name_blacklist(kr, a->blacklist, err) : SI_OK;
    for (int i = 0; i < npubs && r == SI_OK; i++) {
        si_key *k = NULL;
        r = si_key_load_public_file(pubs[i], &k, err);
        if (r == SI_OK && (r = si_keyring_add_key(kr, k, err)) != SI_OK) {
            si_key_free(k);
            si_err_prefix(err, "%s", pubs[i]);
        }
    }
    if (r == SI_OK && a->kt == SI_KR_ARCHIVE_MASTER && kr->nkeys == 0)
        r = si_err_set(err, SI_ERR_USAGE, "an archive-master keyring needs at least one key");
    if (r != SI_OK) {
        si_keyring_free(kr);
        return r;
    }
    *out = kr;
    return SI_OK;
}

static si_result write_keyring(const si_keyring *kr, const char *out, si_err *err)
{
    char *json = NULL;
    si_result r = si_keyring_format(kr, &json, err);
    if (r == SI_OK) {
        int rc = si_write_file_atomic(out, json, strlen(json), 0644);
        if (rc < 0)
            r = si_err_set(err, SI_ERR_IO, "%s: %s", out, strerror(-rc));
    }
    free(json);
    return r;
}

static int cmd_keyring_create(int argc, char **argv)
{
    create_args a = {0};
    int ec = parse_create_args(argc, argv, &a);
    if (ec < 0)
        ec = check_create_args(argc, argv, &a);
    if (ec >= 0)
        return ec;
    si_err err = {0};
    si_key *sk = NULL;
    if (a.signer && si_key_load_private_file(a.signer, &sk, &err) != SI_OK)
        return si_tool_fail(&err);
    si_keyring *kr = NULL;
    si_result r = build_keyring(&a, argv + optind + 1, argc - optind - 1, &kr, &err);
    if (r == SI_OK)
        r = write_keyring(kr, a.out, &err);
    if (r == SI_OK && sk)
        r = si_sign_file(a.out, sk, false, &err);
    if (r == SI_OK)
        printf("%s: %s keyring with %zu key%s%s\n", a.out, a.type, kr->nkeys,
               kr->nkeys == 1 ? "" : "s", sk ? ", signed" : "");
    si_keyring_free(kr);
    si_key_free(sk);
    return r == SI_OK ? SI_OK : si_tool_fail(&err);
}

/* ---------------------------------------------------------------- keyring check */

static const char check_usage[] =
    "usage: sysimage keyring check --archive-master AM.keyring [--blacklist B.keyring]\n"
    "                              [--device MODEL] [--now EPOCH] KEYRING...\n\n"
    "Validate each KEYRING (with KEYRING.sig beside it) against its parent in the\n"
    "chain archive-master -> image-master -> image-signing -> device-signing and\n"
    "image-master -> blacklist: signature by a non-blacklisted parent key, type,\n"
    "model (--device) and expiry (--now, default the current time). Files may be\n"
    "given in any order. Exit 0 only when all are valid.\n";

/* --blacklist must name a blacklist keyring. */
static si_result check_blacklist_type(const char *bl_path, si_err *err)
{
    si_keyring *bl = NULL;
    si_result r = si_keyring_load(bl_path, &bl, err);
    if (r != SI_OK)
        return r;
    si_keyring_type bt = bl->type;
    si_keyring_free(bl);
    if (bt != SI_KR_BLACKLIST)
        return si_err_set(err, SI_ERR_KEYRING_TYPE, "%s: keyring type is %s, expected blacklist",
                          bl_path, si_keyring_type_name(bt));
    return SI_OK;
}

static void print_chain(const si_trust *t)
{
    for (int k = 0; k < SI_KR_TYPE_COUNT; k++) {
        const si_keyring *kr = t->ring[k];
        if (!kr)
            continue;
        printf("ok %s: %zu key%s", si_keyring_type_name(kr->type), kr->nkeys,
               kr->nkeys == 1 ? "" : "s");
        if (kr->has_expiry)
            printf(", expires %" PRId64, kr->expiry);
        if (kr->model[0])
            printf(", model %s", kr->model);
        if (kr->version)
            printf(", version %" PRId64, kr->version);
        putchar('\n');
    }
}

/* Load the archive-master, then the keyrings in chain order; print them. */
static si_result validate_chain(const char *am_path, const char *device, int64_t now,
                                const char *const *paths, const char *const *sigpaths, int n,
                                si_err *err)
{
    si_trust t;
    si_trust_init(&t, device, now);
    si_keyring *am = NULL;
    si_result r = si_keyring_load(am_path, &am, err);
    if (r == SI_OK && (r = si_trust_set_archive_master(&t, am, err)) != SI_OK)
        si_err_prefix(err, "%s", am_path);
    if (r == SI_OK && (r = si_trust_load_files(&t, paths, sigpaths, (size_t)n, err)) == SI_OK)
        print_chain(&t);
    si_trust_free(&t);
    return r;
}

static int cmd_keyring_check(int argc, char **argv)
{
    static const struct option opts[] = {{"archive-master", required_argument, NULL, 'a'},
                                         {"blacklist", required_argument, NULL, 'b'},
                                         {"device", required_argument, NULL, 'd'},
                                         {"now", required_argument, NULL, 'n'},
                                         {0, 0, 0, 0}};
    const char *am_path = NULL, *bl_path = NULL, *device = NULL;
    int64_t now = (int64_t)time(NULL);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'a')
            am_path = optarg;
        else if (c == 'b')
            bl_path = optarg;
        else if (c == 'd')
            device = optarg;
        else if (c != 'n')
            return si_tool_usage_error("keyring check", "unknown option");
        else if (!parse_i64(optarg, 0, INT64_MAX, &now))
            return si_tool_usage_error("keyring check",
                                       "--now: EPOCH must be a non-negative integer");
    }
    if (!am_path)
        return si_tool_usage_error("keyring check", "--archive-master is required");
    int nfiles = argc - optind + (bl_path ? 1 : 0);
    if (argc - optind < 1)
        return si_tool_usage_error("keyring check", "expected at least one KEYRING");
    if (nfiles > CHECK_MAX_FILES)
        return si_tool_usage_error("keyring check", "too many keyrings");
    const char *paths[CHECK_MAX_FILES], *sigpaths[CHECK_MAX_FILES];
    char sigbuf[CHECK_MAX_FILES][PATH_CAP];
    int n = 0;
    if (bl_path)
        paths[n++] = bl_path;
    for (int i = optind; i < argc; i++)
        paths[n++] = argv[i];
    for (int i = 0; i < n; i++) {
        if (!path_with_suffix(sigbuf[i], paths[i], ".sig"))
            return si_tool_usage_error("keyring check", "path too long");
        sigpaths[i] = sigbuf[i];
    }
    si_err err = {0};
    si_result r = bl_path ? check_blacklist_type(bl_path, &err) : SI_OK;
    if (r == SI_OK)
        r = validate_chain(am_path, device, now, paths, sigpaths, n, &err);
    return r == SI_OK ? SI_OK : si_tool_fail(&err);
}

/* ---------------------------------------------------------------- dispatch */

static const char keyring_usage[] =
    "usage: sysimage keyring create|check ...\n"
    "Run 'sysimage keyring create --help' or 'sysimage keyring check --help'.\n";

int cmd_keyring_create_main(int argc, char **argv)
{
    if (si_tool_wants_help(argc, argv, create_usage))
        return SI_OK;
    return cmd_keyring_create(argc, argv);
}

int cmd_keyring_check_main(int argc, char **argv)
{
    if (si_tool_wants_help(argc, argv, check_usage))
        return SI_OK;
    return cmd_keyring_check(argc, argv);
}

int cmd_keyring(int argc, char **argv)
{
    if (si_tool_wants_help(argc, argv, keyring_usage))
        return SI_OK;
    fputs(keyring_usage, stderr);
    return SI_ERR_USAGE;
}
