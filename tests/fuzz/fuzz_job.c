/* fuzz_job.c - binding a job to its index on arbitrary input: bytes are
 * "<installed build or ->[r]\n<index.json>\n%%\n<command file>". No crash;
 * an accepted job's plan is a path from the installed build: one plan file
 * per update line, each named by its index entry, ending at or above it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"

static si_command_file cf;
static si_job_plan plan;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *d = (const char *)data;
    const char *nl = memchr(d, '\n', size);
    if (!nl)
        return 0;
    si_job_installed inst = {0};
    if (d[0] != '-') {
        inst.has_build = true;
        for (const char *p = d; p < nl && *p >= '0' && *p <= '9' && inst.build < 100000000; p++)
            inst.build = inst.build * 10 + (*p - '0');
    }
    inst.resuming = nl > d && nl[-1] == 'r';
    const char *rest = nl + 1;
    size_t rlen = size - (size_t)(rest - d);
    const char *sep = memmem(rest, rlen, "\n%%\n", 4);
    if (!sep)
        return 0;
    si_err err;
    si_index *idx = NULL;
    if (si_index_parse(rest, (size_t)(sep - rest), &idx, &err) != SI_OK)
        return 0;
    const char *cmd = sep + 4;
    if (si_command_file_parse(cmd, size - (size_t)(cmd - d), &cf, &err) == SI_OK) {
        err.msg[0] = '\0';
        if (si_job_bind(idx, &cf, &inst, &plan, &err) == SI_OK) {
            if (plan.nimages == 0 || plan.nfiles != si_command_file_count(&cf, SI_CMD_UPDATE))
                abort();
            if (inst.has_build && plan.target < inst.build)
                abort();
            for (size_t i = 0; i < plan.nfiles; i++)
                if (strcmp(cf.cmds[plan.files[i].cmd].file,
                           si_job_basename(plan.files[i].entry->path)) != 0)
                    abort();
        } else if (err.msg[0] == '\0') {
            abort();
        }
    }
    si_index_free(idx);
    return 0;
}
