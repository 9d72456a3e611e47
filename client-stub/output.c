/* output.c - how every stub command reports: one JSON object per line on
 * stdout, errors on stderr (and as JSON with --json). Kept out of main.c so
 * that no command calls back into the program's main file. */
#include <stdio.h>
#include <stdlib.h>

#include "stub.h"

void stub_print_json_line(cJSON *obj)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    if (text) {
        fputs(text, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    free(text);
    cJSON_Delete(obj);
}

int stub_fail(const si_err *err, bool json)
{
    const char *msg = err->msg[0] ? err->msg : si_result_message(err->code);
    fprintf(stderr, "sysimage-stub: %s\n", msg);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        if (o && (!cJSON_AddStringToObject(o, "error", si_result_name(err->code)) ||
                  !cJSON_AddNumberToObject(o, "code", (double)err->code) ||
                  !cJSON_AddStringToObject(o, "message", msg))) {
            cJSON_Delete(o);
            o = NULL;
        }
        stub_print_json_line(o);
    }
    return err->code ? (int)err->code : SI_ERR_INTERNAL;
}
