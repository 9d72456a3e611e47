/* cmd_sign.c - `sysimage sign` and `sysimage verify`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "key.h"
#include "keyring.h"
#include "result.h"
#include "sigfile.h"

#define PATH_CAP 4096
#define VERIFY_MAX_KEYRINGS 8

static const char sign_usage[] =
    "usage: sysimage sign --key K.key [--append] FILE\n\n"
    "Write the detached signature FILE.sig: SHA-256 of FILE signed with K.key\n"
    "(ECDSA P-256 or RSA-PSS). --append keeps the stanzas already in FILE.sig\n"
    "(replacing one by the same key), so that several keys can sign during a\n"
    "key rotation.\n";

int cmd_sign(int argc, char **argv)
{
    if (si_tool_wants_help(argc, argv, sign_usage))
        return SI_OK;
    static const struct option opts[] = {{"key", required_argument, NULL, 'k'},
                                         {"append", no_argument, NULL, 'a'},
                                         {0, 0, 0, 0}};
    const char *keypath = NULL;
    bool append = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'k')
            keypath = optarg;
        else if (c == 'a')
            append = true;
        else
            return si_tool_usage_error("sign", "unknown option");
    }
    if (!keypath)
        return si_tool_usage_error("sign", "--key is required");
    if (argc - optind != 1)
        return si_tool_usage_error("sign", "expected exactly one FILE");
    const char *file = argv[optind];
    si_err err = {0};
    si_key *k = NULL;
    if (si_key_load_private_file(keypath, &k, &err) != SI_OK)
        return si_tool_fail(&err);
    si_result r = si_sign_file(file, k, append, &err);
    if (r == SI_OK)
        printf("signed %s: key %s (%s)\n", file, si_key_id(k), si_key_algorithm(k));
    si_key_free(k);
    return r == SI_OK ? SI_OK : si_tool_fail(&err);
}

static const char verify_usage[] =
    "usage: sysimage verify --keyring K.keyring [--keyring ...] [--blacklist B.keyring] FILE\n\n"
    "Check FILE against FILE.sig: succeeds when a stanza verifies with a key of one\n"
    "of the given keyrings that is not in the blacklist. Prints one line naming\n"
    "the key id and keyring type; otherwise exits with the error code and the\n"
    "reason on stderr. The keyrings themselves are taken as given (use\n"
    "'sysimage keyring check' to validate a chain).\n";

int cmd_verify(int argc, char **argv)
{
    if (si_tool_wants_help(argc, argv, verify_usage))
        return SI_OK;
    static const struct option opts[] = {{"keyring", required_argument, NULL, 'k'},
                                         {"blacklist", required_argument, NULL, 'b'},
                                         {0, 0, 0, 0}};
    const char *rings[VERIFY_MAX_KEYRINGS];
    size_t nrings = 0;
    const char *bl_path = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'k') {
            if (nrings == VERIFY_MAX_KEYRINGS)
                return si_tool_usage_error("verify", "too many --keyring options");
            rings[nrings++] = optarg;
        } else if (c == 'b') {
            bl_path = optarg;
        } else {
            return si_tool_usage_error("verify", "unknown option");
        }
    }
    if (nrings == 0)
        return si_tool_usage_error("verify", "at least one --keyring is required");
    if (argc - optind != 1)
        return si_tool_usage_error("verify", "expected exactly one FILE");
    const char *file = argv[optind];
    char sigpath[PATH_CAP];
    if ((size_t)snprintf(sigpath, sizeof(sigpath), "%s.sig", file) >= sizeof(sigpath))
        return si_tool_usage_error("verify", "FILE path too long");
    si_err err = {0};
    si_keyring *kr[VERIFY_MAX_KEYRINGS] = {0};
    si_keyring *bl = NULL;
    si_result r = SI_OK;
    for (size_t i = 0; i < nrings && r == SI_OK; i++)
        r = si_keyring_load(rings[i], &kr[i], &err);
    if (r == SI_OK && bl_path) {
        r = si_keyring_load(bl_path, &bl, &err);
        if (r == SI_OK && bl->type != SI_KR_BLACKLIST)
            r = si_err_set(&err, SI_ERR_KEYRING_TYPE, "%s: keyring type is %s, expected blacklist",
                           bl_path, si_keyring_type_name(bl->type));
    }
    si_signer who;
    if (r == SI_OK)
        r = si_verify_file(file, sigpath, (const si_keyring *const *)kr, nrings, bl, &who, &err);
    if (r == SI_OK)
        printf("verified %s: key %s (%s)\n", file, who.key_id,
               si_keyring_type_name(who.keyring_type));
    for (size_t i = 0; i < nrings; i++)
        si_keyring_free(kr[i]);
    si_keyring_free(bl);
    return r == SI_OK ? SI_OK : si_tool_fail(&err);
}
