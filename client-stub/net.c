/* net.c - the stub's downloads: lib/http with the [service] and [network]
 * settings of client.ini, HTTPS only, against the configured CA file. */
#include "http.h"
#include "stub.h"

si_result stub_net_open(const stub_config *cfg, si_http **out, si_err *err)
{
    si_http_opts o = {.base_url = cfg->base_url, .ca_file = cfg->ca_file, .protocols = "https",
                      .user_agent = "sysimage-stub/1", .log_name = "sysimage-stub",
                      .connect_timeout = cfg->connect_timeout,
                      .low_speed_limit = cfg->low_speed_limit,
                      .low_speed_time = cfg->low_speed_time, .retries = cfg->retries,
                      .max_rate = cfg->max_rate, .budget_rate = cfg->budget_rate,
                      .budget_allowance = cfg->budget_allowance};
    return si_http_open(&o, out, err);
}
