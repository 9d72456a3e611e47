/* channels.h - channels.json (docs/formats.md, system-image field names).
 *
 * {"<channel>": {"alias": "...", "hidden": true, "redirect": "...",
 *                "devices": {"<device>": {"index": "/<channel>/<device>/index.json",
 *                                         "keyring": {"path": "...", "signature": "..."}}}}}
 * Unknown fields are ignored; errors name the field. */
#ifndef SI_CHANNELS_H
#define SI_CHANNELS_H

#include <stdbool.h>
#include <stddef.h>

#include "result.h"

#define SI_CHANNELS_MAX_BYTES (1024 * 1024)

typedef struct si_channel_device {
    char *name;
    char *index;            /* path of index.json on the server */
    char *keyring_path;     /* NULL if no device keyring */
    char *keyring_signature;
} si_channel_device;

typedef struct si_channel {
    char *name;
    char *alias;            /* NULL if absent */
    char *redirect;         /* NULL if absent */
    bool hidden;
    size_t ndevices;
    si_channel_device *devices;
} si_channel;

typedef struct si_channels {
    size_t nchannels;
    si_channel *channels;
} si_channels;

si_result si_channels_parse(const char *json, size_t len, si_channels **out, si_err *err);
si_result si_channels_load(const char *path, si_channels **out, si_err *err);
si_result si_channels_format(const si_channels *ch, char **json_out, si_err *err);
void si_channels_free(si_channels *ch);
const si_channel *si_channels_find(const si_channels *ch, const char *name);
const si_channel_device *si_channel_find_device(const si_channel *c, const char *device);

/* Editing (the publisher): find or append a channel / device (the new entry
 * has only its name); NULL with SI_ERR_NOMEM. The result is freed by
 * si_channels_free. */
si_channel *si_channels_get(si_channels *ch, const char *name, si_err *err);
si_channel_device *si_channel_get_device(si_channel *c, const char *name, si_err *err);
/* Replace dst's devices by deep copies of src's (an alias serves its
 * target's indexes). */
si_result si_channel_copy_devices(si_channel *dst, const si_channel *src, si_err *err);

#endif
