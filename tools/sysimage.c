/* sysimage - host/server tool: keys, keyrings, signatures, update payloads,
 * publishing. Sub-commands are listed in the table below. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "result.h"

static const struct si_tool_command commands[] = {
    {"keygen", "generate a signing key pair (ECDSA P-256 or RSA)", cmd_keygen},
    {"keyring create", "write and sign a keyring of public keys", cmd_keyring_create_main},
    {"keyring check", "validate keyrings against the chain of trust", cmd_keyring_check_main},
    {"keyring", "keyring create|check (see their --help)", cmd_keyring},
    {"sign", "sign a file into FILE.sig", cmd_sign},
    {"verify", "verify FILE.sig with keyrings", cmd_verify},
    {"build full", "build a full update tarball from a tree or tarball", si_cmd_build_full},
    {"build delta", "build a delta update tarball between two trees/tarballs", si_cmd_build_delta},
    {"apply", "apply update tarballs to a directory", si_cmd_apply},
    {"image", "write a factory disk image of a published build (.bmap, zstd)", cmd_image},
    {"flash-media", "write provisioning media for the recovery's flash mode", cmd_flash_media},
    {"publish", "add a version to a static server tree; edit channels", cmd_publish},
    {NULL, NULL, NULL},
};

static void usage(FILE *f)
{
    fputs("usage: sysimage COMMAND [ARGS...]\n\n"
          "Build, sign and publish image-based system updates.\n\ncommands:\n", f);
    for (const struct si_tool_command *c = commands; c->name; c++)
        fprintf(f, "  %-16s %s\n", c->name, c->summary);
    fputs("\nRun 'sysimage COMMAND --help' for a command's options.\n"
          "\nexit status: 0 on success, else the si_result code of the error (lib/result.h):\n"
          "1 usage, 2 I/O, 4 parse, 7 bad signature, 14 version not greater, 17 unsafe path,\n"
          "27 exists, ...; the message on stderr names what was wrong.\n", f);
}

/* Does name ("keyring create") match argv[0..]? Returns words consumed. */
static int match(const char *name, int argc, char **argv)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", name);
    char *space = strchr(buf, ' ');
    if (!space)
        return strcmp(buf, argv[0]) == 0 ? 1 : 0;
    *space = '\0';
    if (argc < 2 || strcmp(buf, argv[0]) != 0 || strcmp(space + 1, argv[1]) != 0)
        return 0;
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? SI_ERR_USAGE : SI_OK;
    }
    for (const struct si_tool_command *c = commands; c->name; c++) {
        int used = match(c->name, argc - 1, argv + 1);
        if (used)
            return c->run(argc - used, argv + used);
    }
    fprintf(stderr, "sysimage: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return SI_ERR_USAGE;
}
