/* buildtime.c - si_build_epoch (buildtime.h). */
#include "buildtime.h"

#include <stdlib.h>
#include <string.h>

/* Days since 1970-01-01 of a civil date (month 0..11). */
static int64_t days_from_civil(int year, int month, int day)
{
    int y = year - (month < 2);
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int mp = (month + 10) % 12; /* March = 0 */
    int doy = (153 * mp + 2) / 5 + day - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int64_t)era * 146097 + doe - 719468;
}

int64_t si_build_epoch(void)
{
    /* __DATE__ "Nov 22 2026", __TIME__ "03:16:17": local time of the build
     * host, so one day earlier is a safe lower bound. */
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    const char *date = __DATE__, *tm = __TIME__;
    char mon[4] = {date[0], date[1], date[2], '\0'};
    const char *m = strstr(months, mon);
    if (!m)
        return 0;
    int month = (int)(m - months) / 3, day = atoi(date + 4), year = atoi(date + 7);
    int hh = atoi(tm), mm = atoi(tm + 3), ss = atoi(tm + 6);
    int64_t t = days_from_civil(year, month, day) * 86400 + hh * 3600 + mm * 60 + ss - 86400;
    return t > 0 ? t : 0;
}
