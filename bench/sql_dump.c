/* sql_dump: prints the module's own SQL (mod_redeem/httpd/statements.h), one
 * statement a line as "NAME<TAB>SQL", for the pgbench ceilings of `make
 * bench`: the bench always measures the statements the module runs now. */
#include "httpd/statements.h"

#include <stdio.h>

int main(void)
{
    printf("redeem\t%s\n", SQL_REDEEM);
    printf("user_by_id\t%s\n", SQL_USER_BY_ID);
    printf("users_by_id\t%s\n", SQL_USERS_BY_ID);
    printf("ping\t%s\n", SQL_PING);
    return 0;
}
