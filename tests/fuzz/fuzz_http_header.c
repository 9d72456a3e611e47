/* fuzz_http_header.c - lib/http's parser of the server's response header
 * lines (status lines, Content-Range) on arbitrary bytes, which need not be
 * NUL-terminated: a range it accepts is well ordered and prints back to a
 * line that parses to the same range. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy: ASan catches any read past the line */
    char *line = malloc(size ? size : 1);
    if (!line)
        return 0;
    if (size)
        memcpy(line, data, size);
    si_http_range r;
    si_http_hdr h = si_http_parse_header(line, size, &r);
    free(line);
    if (h != SI_HTTP_HDR_RANGE)
        return 0;
    if (r.start < 0 || r.end < r.start || (r.total >= 0 && r.end >= r.total) || r.total < -1)
        abort();
    char back[128];
    if (r.total >= 0)
        snprintf(back, sizeof(back), "Content-Range: bytes %" PRId64 "-%" PRId64 "/%" PRId64 "\r\n",
                 r.start, r.end, r.total);
    else
        snprintf(back, sizeof(back), "Content-Range: bytes %" PRId64 "-%" PRId64 "/*\r\n", r.start,
                 r.end);
    si_http_range again;
    if (si_http_parse_header(back, strlen(back), &again) != SI_HTTP_HDR_RANGE ||
        memcmp(&again, &r, sizeof(r)) != 0)
        abort();
    return 0;
}
