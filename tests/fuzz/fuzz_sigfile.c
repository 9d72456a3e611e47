/* fuzz_sigfile.c - signature file parser on arbitrary bytes; whatever parses
 * must format and parse back to the same stanzas, and verification against
 * a fixed key must not crash. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "key.h"
#include "sigfile.h"

/* A P-256 public key whose private half was discarded after generation. */
static const char pub_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQG1T3CUw9KJZn/9+gZn2TTAq15gI\n"
    "ekeIQppLlGMZI8TgPnYT90On+o6qsY9NKxFG1wucxo8qLS1nQb54MlWhYQ==\n"
    "-----END PUBLIC KEY-----\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    si_sigfile *sf = malloc(sizeof(*sf));
    si_sigfile *again = malloc(sizeof(*again));
    if (!sf || !again)
        abort();
    si_err err = {0};
    if (si_sigfile_parse((const char *)data, size, sf, &err) == SI_OK) {
        if (sf->count == 0 || sf->count > SI_SIGFILE_MAX_STANZAS)
            abort();
        char *text = NULL;
        size_t len = 0;
        if (si_sigfile_format(sf, &text, &len, &err) != SI_OK)
            abort();
        if (si_sigfile_parse(text, len, again, &err) != SI_OK || again->count != sf->count)
            abort();
        for (size_t i = 0; i < sf->count; i++) {
            const si_sig_stanza *a = &sf->stanzas[i], *b = &again->stanzas[i];
            if (strcmp(a->key_id, b->key_id) || strcmp(a->algorithm, b->algorithm) ||
                a->sig_len != b->sig_len || memcmp(a->sig, b->sig, a->sig_len))
                abort();
        }
        free(text);
        si_key *k = NULL;
        if (si_key_load_public_pem(pub_pem, sizeof(pub_pem) - 1, &k, NULL) != SI_OK)
            abort();
        uint8_t digest[SI_SHA256_LEN];
        si_sha256_buf(data, size, digest);
        for (size_t i = 0; i < sf->count; i++)
            if (si_key_verify_digest(k, sf->stanzas[i].algorithm, digest, sf->stanzas[i].sig,
                                     sf->stanzas[i].sig_len) == SI_OK)
                abort(); /* nobody can forge this key's signature over the input */
        si_key_free(k);
    } else if (err.msg[0] == '\0') {
        abort(); /* every failure names what was wrong */
    }
    free(sf);
    free(again);
    return 0;
}
