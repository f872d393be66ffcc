# POST /admin/generate-codes at the default maximum: 100000 codes in one
# request, every one in the response and in the database, all different.
use lib 't/lib';
use Test::Redeem;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: 100000 codes in one request
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 100000}
--- timeout: 180
--- error_code: 201
--- response_json
{"message": "Successfully generated 100000 redeem codes", "count": 100000}
--- check_eval
# One decode of the 2.9 MB body (JSON::PP takes about a second for it).
my $json = response()->{json};
json_match($json, {message => 'Successfully generated 100000 redeem codes', count => 100000,
                   batch_id => qr/^[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}$/});
my $codes = $json->{codes};
die "codes is not an array\n" unless ref $codes eq 'ARRAY';
die 'got ' . @$codes . " codes\n" unless @$codes == 100000;
my $symbol = qr/[0-9A-HJKMNP-TV-Z]/;
my (%seen, @bad);
for my $code (@$codes) {
    push @bad, $code unless $code =~ /\A(?:$symbol){12}-(?:$symbol){4}-(?:$symbol){8}\z/;
    push @bad, "$code (twice)" if $seen{$code}++;
}
die "bad codes: @bad[0 .. ($#bad < 4 ? $#bad : 4)]\n" if @bad;
# The batch in the database is the one answered.
sql('SELECT DISTINCT batch_id FROM redeem_codes') eq $json->{batch_id}
  or die "the stored batch is not $json->{batch_id}\n";
--- db_check
SELECT count(*), count(DISTINCT code_hash), count(DISTINCT code_sealed), count(DISTINCT batch_id),
       count(*) FILTER (WHERE created_at >= '$REQUEST_TIME')
  FROM redeem_codes;
SELECT sum(total), sum(used) FROM code_counts;
SELECT event, outcome, target LIKE '%' || (SELECT min(batch_id::text) FROM redeem_codes) || '%'
  FROM audit_log;
--- db_check_out
100000|100000|100000|1|100000
100000|0
codes_generated|success|t



=== TEST 2: the listing of that batch counts them all
--- login: admin
--- request
GET /admin/codes?per_page=1
--- error_code: 200
--- response_json
{"total": 100000, "pages": 100000, "current_page": 1, "per_page": 1}



=== TEST 3: one more than the maximum is refused, and writes nothing
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 100001}
--- error_code: 400
--- response_json_exact
{"error": "/count/"}
--- db_check
SELECT count(*) FROM redeem_codes;
SELECT count(*) FROM audit_log;
--- db_check_out
100000
1
