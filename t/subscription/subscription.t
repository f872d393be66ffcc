# GET /api/subscription and GET /subscription/{user_id}: states inactive,
# active and expired, days_remaining, who may read whose status, and the
# audit row of an admin's read of someone else's.
use lib 't/lib';
use Test::Redeem;

# The subscription columns of a user as the API writes them.
sub db_user {
    my ($name) = @_;
    my ($created, $expires) = split /\|/, sql('SELECT api_ts(created_at), api_ts(subscription_expires_at)'
                                              . ' FROM users WHERE id = ' . user_id($name)), -1;
    return {created_at => $created, subscription_expires_at => length $expires ? $expires : undef};
}

# The response is user $name's status: $status, $days, and the database's timestamps.
sub status_ok {
    my ($name, $status, $days) = @_;
    my $db = db_user($name);
    json_match(response()->{json}, {
        user_id => 0 + user_id($name), email => "$name\@example.test",
        is_subscribed => $status eq 'active' ? JSON::PP::true : JSON::PP::false,
        subscription_status => $status, subscription_expires_at => $db->{subscription_expires_at},
        days_remaining => $days, created_at => $db->{created_at},
    }, 1);
}

# `--- audit: OUTCOME`: exactly one audit row, an admin's subscription_read of
# user $target_user with that outcome. `--- audit: none`: no audit row.
add_block_preprocessor(sub {
    my ($block) = @_;
    my $audit = $block->audit;
    return unless defined $audit;
    $audit =~ s/^\s+|\s+$//g;
    my $since = "FROM audit_log WHERE occurred_at >= '\$REQUEST_TIME'";
    my ($sql, $want) = $audit eq 'none'
      ? ("SELECT 'audit rows: ' || count(*) $since", 'audit rows: 0')
      : ("SELECT 'audit: ' || string_agg(format('%s %s actor=%s %s %s', event, outcome,"
         . " actor_id = \$USER_ID_admin, client_addr, request_id <> ''), '; ') $since",
         "audit: subscription_read $audit actor=t 127.0.0.1 t");
    my ($check, $out) = map { defined ? s/\s+\z//r : undef } scalar($block->db_check), scalar($block->db_check_out);
    $block->set_value(db_check => defined $check ? "$check;\n$sql" : $sql);
    $block->set_value(db_check_out => defined $out ? "$out\n$want" : $want);
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: never subscribed: is_subscribed false, expiry null
--- login: alice
--- request
GET /api/subscription
--- error_code: 200
--- response_json_exact
{"user_id": $USER_ID_alice, "email": "alice@example.test", "is_subscribed": false,
 "subscription_expires_at": null}
--- response_headers
Cache-Control: no-store
--- audit: none



=== TEST 2: never subscribed: status inactive, 0 days, all fields
--- login: alice
--- request
GET /subscription/$USER_ID_alice
--- error_code: 200
--- response_json_exact
{"user_id": $USER_ID_alice, "email": "alice@example.test", "is_subscribed": false,
 "subscription_status": "inactive", "subscription_expires_at": null, "days_remaining": 0,
 "created_at": "/^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z$/"}
--- check_eval
status_ok('alice', 'inactive', 0)
--- response_headers
Cache-Control: no-store
--- audit: none



=== TEST 3: (the admin generates a code)
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1}
--- error_code: 201
--- save_json
CODE=codes.0



=== TEST 4: (alice redeems it)
--- login: alice
--- request
POST /redeem
--- request_json
{"card_code": "$CODE"}
--- error_code: 200
--- save_json
EXPIRY=new_subscription_expiry



=== TEST 5: after a redemption: subscribed until the new expiry
--- login: alice
--- request
GET /api/subscription
--- error_code: 200
--- response_json_exact
{"user_id": $USER_ID_alice, "email": "alice@example.test", "is_subscribed": true,
 "subscription_expires_at": "$EXPIRY"}



=== TEST 6: after a redemption: active, the days of a month left
--- login: alice
--- request
GET /subscription/$USER_ID_alice
--- error_code: 200
--- response_json
{"subscription_status": "active", "is_subscribed": true, "subscription_expires_at": "$EXPIRY",
 "days_remaining": "/^(?:27|28|29|30)$/"}
--- audit: none



=== TEST 7: 2 days and 3 hours left: 2 days, active
--- db_init
UPDATE users SET subscription_expires_at = now() + interval '2 days 3 hours' WHERE id = $USER_ID_alice;
--- login: alice
--- request
GET /subscription/$USER_ID_alice
--- error_code: 200
--- check_eval
status_ok('alice', 'active', 2)



=== TEST 8: 23 hours left: active, 0 days
--- db_init
UPDATE users SET subscription_expires_at = now() + interval '23 hours' WHERE id = $USER_ID_alice;
--- login: alice
--- request
GET /subscription/$USER_ID_alice
--- error_code: 200
--- check_eval
status_ok('alice', 'active', 0)



=== TEST 9: 400 days left: 400
--- db_init
UPDATE users SET subscription_expires_at = now() + interval '400 days 1 minute' WHERE id = $USER_ID_alice;
--- login: alice
--- request
GET /subscription/$USER_ID_alice
--- error_code: 200
--- check_eval
status_ok('alice', 'active', 400)



=== TEST 10: expired a day ago: expired, 0 days, the old expiry shown
--- db_init
UPDATE users SET subscription_expires_at = now() - interval '1 day' WHERE id = $USER_ID_alice;
--- login: alice
--- request
GET /subscription/$USER_ID_alice
--- error_code: 200
--- response_json
{"subscription_status": "expired", "is_subscribed": false, "days_remaining": 0,
 "subscription_expires_at": "/^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z$/"}
--- check_eval
status_ok('alice', 'expired', 0)



=== TEST 11: expired: /api/subscription says not subscribed, with the old expiry
--- login: alice
--- request
GET /api/subscription
--- error_code: 200
--- check_eval
json_match(response()->{json}, {user_id => 0 + user_id('alice'), email => 'alice@example.test',
                                is_subscribed => JSON::PP::false,
                                subscription_expires_at => db_user('alice')->{subscription_expires_at}}, 1);
defined response()->{json}{subscription_expires_at};



=== TEST 12: someone else's id, not an admin: 403
--- login: bob
--- request
GET /subscription/$USER_ID_alice
--- error_code: 403
--- response_json_exact
{"error": "Access denied. You can only check your own subscription status"}
--- response_body_unlike
alice
--- audit: none



=== TEST 13: an unknown id, not an admin: 403 as well (no probing for ids)
--- login: bob
--- request
GET /subscription/987654321
--- error_code: 403
--- response_json_exact
{"error": "Access denied. You can only check your own subscription status"}
--- audit: none



=== TEST 14: the admin reads alice's status: 200, audited
--- login: admin
--- request
GET /subscription/$USER_ID_alice
--- error_code: 200
--- check_eval
status_ok('alice', 'expired', 0)
--- db_check
SELECT target LIKE '%$USER_ID_alice' FROM audit_log WHERE occurred_at >= '$REQUEST_TIME'
--- db_check_out
t
--- audit: success
--- error_log
/RDM0401: audit: event=subscription_read actor=$USER_ID_admin target=\S*.*\b$USER_ID_alice client=127\.0\.0\.1 outcome=success request=\S+/



=== TEST 15: the admin reads bob's (never subscribed): 200 inactive, audited
--- login: admin
--- request
GET /subscription/$USER_ID_bob
--- error_code: 200
--- check_eval
status_ok('bob', 'inactive', 0)
--- audit: success



=== TEST 16: the admin asks for an unknown id: 404 User not found, audited not_found
--- login: admin
--- request
GET /subscription/987654321
--- error_code: 404
--- response_json_exact
{"error": "User not found"}
--- db_check
SELECT target LIKE '%987654321' FROM audit_log WHERE occurred_at >= '$REQUEST_TIME'
--- db_check_out
t
--- audit: not_found



=== TEST 17: the admin reads their own status: 200, not an audited read of someone else
--- login: admin
--- request
GET /subscription/$USER_ID_admin
--- error_code: 200
--- check_eval
status_ok('admin', 'inactive', 0) && response()->{json}{email} eq var('ADMIN_EMAIL')
--- audit: none



=== TEST 18: a non-numeric id: 400
--- login: bob
--- request
GET /subscription/abc
--- error_code: 400
--- response_json_exact
{"error": "/./"}
--- audit: none



=== TEST 19: a non-numeric id, as the admin: 400, not audited
--- login: admin
--- request
GET /subscription/abc
--- error_code: 400
--- response_json_exact
{"error": "/./"}
--- audit: none



=== TEST 20: a negative id: 400
--- login: bob
--- request
GET /subscription/-1
--- error_code: 400
--- response_json_exact
{"error": "/./"}



=== TEST 21: id 0: 400
--- login: admin
--- request
GET /subscription/0
--- error_code: 400
--- response_json_exact
{"error": "/./"}



=== TEST 22: an id with a fraction: 400
--- login: admin
--- request
GET /subscription/1.5
--- error_code: 400
--- response_json_exact
{"error": "/./"}



=== TEST 23: an id beyond 64 bits: 400
--- login: admin
--- request
GET /subscription/99999999999999999999
--- error_code: 400
--- response_json_exact
{"error": "/./"}



=== TEST 24: an id with trailing garbage: 400
--- login: bob
--- request
GET /subscription/${USER_ID_bob}x
--- error_code: 400
--- response_json_exact
{"error": "/./"}



=== TEST 25: /subscription/ with no id: 404
--- login: bob
--- request
GET /subscription/
--- error_code: 404
--- response_json_exact
{"error": "Not found"}



=== TEST 26: /subscription with no slash: 404
--- login: bob
--- request
GET /subscription
--- error_code: 404
--- response_json_exact
{"error": "Not found"}



=== TEST 27: /subscription/{id}/more: 404
--- login: bob
--- request
GET /subscription/$USER_ID_bob/more
--- error_code: 404
--- response_json_exact
{"error": "Not found"}



=== TEST 28: no token, own subscription: 401
--- request
GET /api/subscription
--- error_code: 401
--- response_headers_like
WWW-Authenticate: ^Bearer
--- response_json_exact
{"error": "Authentication required"}



=== TEST 29: no token, subscription by id: 401
--- request
GET /subscription/$USER_ID_bob
--- error_code: 401
--- response_headers_like
WWW-Authenticate: ^Bearer
--- response_json_exact
{"error": "Authentication required"}



=== TEST 30: an expired token: 401
--- token_eval
my $claims = jwt_claims('bob');
$claims->{iat} = now() - 7200;
$claims->{exp} = now() - 3600;
jwt_forge({alg => 'HS256', typ => 'JWT'}, $claims, jwt_secret())
--- request
GET /subscription/$USER_ID_bob
--- error_code: 401
--- response_json_exact
{"error": "Invalid or expired token"}



=== TEST 31: bob reads his own: 200 inactive
--- login: bob
--- request
GET /subscription/$USER_ID_bob
--- error_code: 200
--- check_eval
status_ok('bob', 'inactive', 0)
--- audit: none



=== TEST 32: POST to a subscription: 405
--- login: bob
--- request
POST /subscription/$USER_ID_bob
--- request_json
{}
--- error_code: 405
--- response_headers
Allow: GET, HEAD



=== TEST 33: HEAD of the own subscription: 200, no body
--- login: bob
--- request
HEAD /api/subscription
--- error_code: 200
--- response_body



=== TEST 34: under one request id a client chose, an admin reads two users' subscriptions: two audit rows, one for each user (before, the second read went out with no row: its audit statement took the first read's row, of the same id, as its own)
--- config eval
client_request_id_config()
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $auth = 'Authorization: Bearer ' . user_token('admin');
my @id = ('X-Request-Id: ' . ('5a' x 16));
for my $who ('readme1', 'readme2') {
    my $res = api_request('GET', '/subscription/' . user_id($who), undef, $auth, @id);
    $res->{status} eq '200' or die "$who: $res->{status} $res->{body}\n";
}
my $rows = sql("SELECT coalesce(string_agg(target, ',' ORDER BY id), '') FROM audit_log"
               . " WHERE event = 'subscription_read' AND request_id = '" . ('5a' x 16) . "'");
$rows eq 'user ' . user_id('readme1') . ',user ' . user_id('readme2')
  or die "two users' subscriptions sent, audit rows: '$rows'\n";
