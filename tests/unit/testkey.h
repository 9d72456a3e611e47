/* testkey.h - what the key and keyring tests share: the public half of a
 * generated key. Header-only, after <cmocka.h>. */
#ifndef SI_TEST_KEY_H
#define SI_TEST_KEY_H

#include <stdlib.h>
#include <string.h>

#include "key.h"

/* The public key of k, through its PEM text (free with si_key_free). */
static si_key *public_of(const si_key *k)
{
    char *pem = NULL;
    assert_int_equal(si_key_public_pem(k, &pem, NULL), SI_OK);
    si_key *pub = NULL;
    assert_int_equal(si_key_load_public_pem(pem, strlen(pem), &pub, NULL), SI_OK);
    free(pem);
    return pub;
}

#endif
