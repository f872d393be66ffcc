# Hostile requests at random. Each is a valid request to one of the
# contract's endpoints with one thing broken: a field's value or type, a
# missing, unknown or repeated field, the body's bytes (cut short, a byte
# that is not UTF-8, nested too deep, too large, not an object, sent in
# chunks), the content type, the token (missing, altered, expired, unsigned,
# of a deleted user, claiming admin), a query parameter, the path's id or
# the method. Each kind of breakage has the statuses it may get (a few are
# spellings the contract accepts: a code as people type it, an email in
# another case), and a tenth of the requests go unbroken, as the control
# that each endpoint still works. They are sent from one client, then drawn
# anew and sent from eight at once.
#
# Every answer must be one of its statuses, JSON with `{"error": ...}` for an
# error, carry nosniff (401: WWW-Authenticate, 405: Allow), echo no password
# and no secret, and (from the one client, through the harness) be an answer
# docs/openapi.yaml documents; and none may make the error log say more than
# info (a hostile client cannot fill an operator's log with warnings). Then
# the database must have changed by exactly what the answers said: a user
# per 201 of register, a batch and its codes per 201 of generate-codes, a
# used code, a month and a successful audit row per 200 of redeem, and
# nothing for any refusal.
#
# Each run draws its own requests and prints its seed; TEST_REDEEM_SEED=N
# repeats a run, TEST_REDEEM_HOSTILE_COUNT (default 600) sets the size of
# each part.
use lib 't/lib';
use Test::Redeem;

our $SEED  = $ENV{TEST_REDEEM_SEED} // (time() ^ ($$ << 15)) & 0x7fffffff;
our $COUNT = $ENV{TEST_REDEEM_HOSTILE_COUNT} // 600;
our $PASSWORD = 'Hostile1pass';

# What the requests were answered ("endpoint status" => how many, and
# codes_made), for the checks of the database.
our %Tally;
# Codes for the redemptions, made in TEST 1 (enough for both runs).
our @Codes;
# The database's state that the answers say how to change: before the
# requests (TEST 1) and after (the last tests).
our %STATE = (
    users => 'SELECT count(*) FROM users',
    codes => 'SELECT count(*) FROM redeem_codes',
    batches => 'SELECT count(*) FROM code_batches',
    used => 'SELECT count(*) FROM redeem_codes WHERE used_at IS NOT NULL',
    generated => "SELECT count(*) FROM audit_log WHERE event = 'codes_generated'",
    redeemed => "SELECT count(*) FROM audit_log WHERE event = 'redeem' AND outcome = 'success'",
);
our %Before;

# The change of a count of %STATE since TEST 1.
sub grown { my ($what) = @_; return sql($STATE{$what}) - $Before{$what} }

# ---------------------------------------------------------------- values

# Values no field of the contract takes, as JSON text.
my @NOT_STRINGS = ('null', 'true', 'false', '0', '-1', '1.5', '[]', '{}', '["x"]', '{"a":1}');
my @NOT_COUNTS = (
    'null', 'true', '"1"', '0', '-1', '1.5', '1e3', '100001', '1e400', '9223372036854775808',
    '-9223372036854775809', '[]', '{}', '""'
);
my @NOT_MONTHS = ('0', '37', '-1', '1.5', '"1"', 'true', '[]', '{}', '1e400');
my @NOT_EXPIRIES = (
    '"2020-01-01T00:00:00Z"', '"2099-13-01T00:00:00Z"', '"2099-01-01"',
    '"2099-01-01T00:00:00"', '"tomorrow"', '12', 'true', '[]', '"2099-02-30T00:00:00Z"',
    '"2099-01-01T00:00:00+24:00"', '"10000-01-01T00:00:00Z"', '""'
);
my @BAD_EMAILS = (
    '""', '" "', '"noatsign"', '"a@b"', '"a@@b.example"', '"a b@example.test"',
    '"a\\u0000b@example.test"', '"\\u202eab@example.test"', '"ab\\u200b@example.test"',
    '"\\ud800@example.test"', '"' . ('x' x 250) . '@e.test"', '"a@example.test\\u0007"',
    '"a@.example"', '"(a)@example.test"'
);
my @BAD_PASSWORDS = (
    '""', '"short1"', '"nodigitsatall"', '"12345678901"', '"' . ('a1' x 65) . '"',
    '"abc\\u0000defg1"', '"\\udc00bcdefg1"'
);
my @BAD_CODES = (
    '""', '"ABC"', '"' . ('A' x 300) . '"', '"\\u0000"', '"K72WKDDSB7XM-T8DB-YZ5K4CX"',
    '"K72WKDDSB7XM-T8DB-YZ5K4CXWW"', '"K72WKDDSB7XM T8DB YZ5K4CXW!"', '"\' OR 1=1 --"'
);

sub pick { return $_[int rand @_] }

# The same JSON string (quotes included, ASCII, no escapes of its own) with
# some of its characters written as \u escapes.
sub escaped {
    my ($text) = @_;
    my $inner = substr($text, 1, -1);
    $inner =~ s/(.)/rand() < 0.3 ? sprintf('\\u%04x', ord $1) : $1/ge;
    return qq("$inner");
}

# A case of the letters of a string drawn at random.
sub mixed_case { return join '', map { rand() < 0.5 ? uc : lc } split //, $_[0] }

# ---------------------------------------------------------------- requests

# The valid form of a request to each endpoint: method, path, query pairs,
# body (an array of [name, JSON text] pairs, written in order), who sends
# it, and what it gets.
my $RegisterN = 0;
our @ENDPOINTS = (
    {   name => 'register', method => 'POST', path => '/api/register', ok => 201,
        body => sub {
            [['email', '"hostile' . ++$RegisterN . '-' . $SEED . '@example.test"'],
             ['password', qq("$PASSWORD")]]
        },
        required => [qw(email password)],
    },
    {   name => 'login', method => 'POST', path => '/api/login', ok => 200,
        body => sub { [['email', '"' . var('EMAIL_harriet') . '"'], ['password', '"' . var('USER_PASSWORD') . '"']] },
        required => [qw(email password)],
    },
    { name => 'profile', method => 'GET', path => '/api/profile', as => 'harriet', ok => 200 },
    {   name => 'users', method => 'GET', path => '/api/users', as => 'admin', ok => 200,
        query => [[page => 1], [per_page => 5]],
    },
    { name => 'health', method => 'GET', path => '/api/health', ok => 200 },
    {   name => 'generate', method => 'POST', path => '/admin/generate-codes', as => 'admin',
        ok => 201,
        body => sub { [['count', 1 + int rand 3], ['duration_months', 1 + int rand 3]] },
        required => [qw(count)],
    },
    {   name => 'codes', method => 'GET', path => '/admin/codes', as => 'admin', ok => 200,
        query => [[page => 1], [per_page => 5], [used => 'false']],
    },
    {   name => 'redeem', method => 'POST', path => '/redeem', as => 'harriet', ok => 200,
        body => sub {
            my $code = shift @Codes // die "out of codes\n";
            [['card_code', qq("$code")], ['user_id', user_id('harriet')]]
        },
        required => [qw(card_code)],
    },
    { name => 'subscription', method => 'GET', path => '/api/subscription', as => 'harriet', ok => 200 },
    {   name => 'subscription_id', method => 'GET', as => 'harriet', ok => 200,
        path => sub { '/subscription/' . user_id('harriet') },
    },
);

sub field_index {
    my ($body, $name) = @_;
    for my $i (0 .. $#$body) { return $i if $body->[$i][0] eq $name }
    return;
}

sub set_field {
    my ($req, $name, $json) = @_;
    my $i = field_index($req->{body}, $name);
    if (defined $i) { $req->{body}[$i][1] = $json }
    else { push @{ $req->{body} }, [$name, $json] }
}

sub body_text {
    my ($body) = @_;
    return '{' . join(',', map { qq("$_->[0]":$_->[1]) } @$body) . '}';
}

# Breakages of a request's fields: [label, sub that breaks $req, statuses].
sub field_breakages {
    my ($ep, $req) = @_;
    my $name = $ep->{name};
    my @b;
    my $value = sub {
        my ($field, $list, @statuses) = @_;
        my $v = pick(@$list);
        return ["$field=$v", sub { set_field($req, $field, $v) }, @statuses];
    };
    if ($name eq 'register') {
        push @b, $value->('email', [@NOT_STRINGS, @BAD_EMAILS], 400),
          $value->('password', [@NOT_STRINGS, @BAD_PASSWORDS], 400);
        # An address in another case, with spaces around or escapes, is the
        # address: trimmed and lowercased.
        push @b, ['email spelt otherwise', sub {
            my $i = field_index($req->{body}, 'email');
            my $email = substr($req->{body}[$i][1], 1, -1);
            $req->{body}[$i][1] = escaped('"' . pick('', ' ', '  ') . mixed_case($email) . pick('', ' ') . '"');
        }, 201];
    }
    elsif ($name eq 'login') {
        # A refused email or password is the same 401 as a wrong one, or a
        # 400 for a wrong type: never a login.
        push @b, $value->('email', [@NOT_STRINGS, @BAD_EMAILS, '"nobody@example.test"'], 400, 401),
          $value->('password', [@NOT_STRINGS, @BAD_PASSWORDS, '"Wrong1password"'], 400, 401),
          ['the password in the other case', sub {
              (my $password = var('USER_PASSWORD')) =~ tr/a-zA-Z/A-Za-z/;
              set_field($req, 'password', qq("$password"));
          }, 401],
          ['email spelt otherwise', sub {
              set_field($req, 'email', escaped('"' . pick('', ' ') . mixed_case(var('EMAIL_harriet')) . pick('', ' ') . '"'));
          }, 200],
          ['password written with escapes', sub { set_field($req, 'password', escaped('"' . var('USER_PASSWORD') . '"')) }, 200];
    }
    elsif ($name eq 'generate') {
        push @b, $value->('count', \@NOT_COUNTS, 400),
          $value->('duration_months', \@NOT_MONTHS, 400),
          $value->('expires_at', \@NOT_EXPIRIES, 400);
    }
    elsif ($name eq 'redeem') {
        my $code = $req->{body}[0][1];
        push @b, $value->('card_code', [@NOT_STRINGS, @BAD_CODES], 400),
          $value->('user_id', ['"' . user_id('harriet') . '"', '1.5', 'true', '[]', 'null'], 400),
          $value->('user_id', [user_id('admin'), 0, -1, 9223372036854775807], 403);
        # One symbol changed to another of the alphabet: the keyed check
        # fails (or, once in a while, an unknown code passes it): 404.
        push @b, ['card_code one symbol changed', sub {
            my $text = $code;
            my @at = grep { substr($text, $_, 1) =~ /[0-9A-Z]/ } 1 .. length($text) - 2;
            my $i = pick(@at);
            my $was = substr($text, $i, 1);
            my $now = pick(grep { $_ ne $was } split //, '0123456789ABCDEFGHJKMNPQRSTVWXYZ');
            substr($text, $i, 1) = $now;
            set_field($req, 'card_code', $text);
        }, 404];
        # Spellings the contract normalizes: still the code.
        push @b, ['card_code in lower case', sub { set_field($req, 'card_code', lc $code) }, 200],
          ['card_code without hyphens', sub { (my $c = $code) =~ tr/-//d; set_field($req, 'card_code', $c) }, 200],
          ['card_code as people type it', sub {
              my $c = substr($code, 1, -1);
              $c =~ s/0/O/g if rand() < 0.7;
              $c =~ s/1/pick('I', 'L', 'i', 'l')/ge;
              $c = mixed_case($c);
              $c =~ tr/-//d if rand() < 0.3;
              set_field($req, 'card_code', escaped('"' . pick('', ' ', '   ') . $c . pick('', ' ') . '"'));
          }, 200];
    }
    return @b;
}

# Breakages of any request with a body.
sub body_breakages {
    my ($ep, $req) = @_;
    my $body = $req->{body};
    my @b = (
        ['an unknown field', sub { push @$body, [pick(qw(is_admin id role x)), pick('true', '1', '"x"')] }, 400],
        ['a required field missing', sub {
            my $i = field_index($body, pick(@{ $ep->{required} }));
            splice @$body, $i, 1;
        }, 400],
        ['a field twice', sub { my $f = pick(@$body); push @$body, [@$f] }, 400],
        ['not an object', sub { $req->{raw} = pick('[]', '"x"', '1', 'null', 'true', '[' . body_text($body) . ']') }, 400],
        ['cut short', sub {
            my $text = body_text($body);
            $req->{raw} = substr($text, 0, int rand length $text);
        }, 400],
        ['trailing bytes', sub { $req->{raw} = body_text($body) . pick('x', '}', ',', '{}', "\0") }, 400],
        ['a byte that is not UTF-8 in a string', sub {
            # Just inside the opening quote of a name or a string value.
            my $text = body_text($body);
            my @inside;
            push @inside, pos($text) while $text =~ /[{,:]"/g;
            substr($text, pick(@inside), 0) = pick("\xff", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x82", "\x80");
            $req->{raw} = $text;
        }, 400],
        ['nested too deep', sub { push @$body, ['x', ('[' x 5000) . (']' x 5000)] }, 400],
        ['larger than the cap', sub { $req->{raw} = body_text($body) . (' ' x (16 * 1024 + int rand 4096)) }, 413],
        ['a control character in a string', sub {
            # Raw, not escaped; in a name when no value is a string.
            my @strings = grep { $_->[1] =~ /^"/ } @$body;
            if (@strings) { pick(@strings)->[1] =~ s/^"/"\x01/ }
            else { pick(@$body)->[0] =~ s/^/\t/ }
        }, 400],
        ['no Content-Type', sub { $req->{content_type} = undef }, 415],
        ['another Content-Type', sub {
            $req->{content_type} = pick('text/plain', 'application/x-www-form-urlencoded',
                                        'application/jsonp', 'multipart/form-data; boundary=x', 'json',
                                        'application/json, application/json');
        }, 415],
        # The same body in chunks of up to 64 bytes, without a length; a
        # body over the cap is still one.
        ['the body sent in chunks', sub { $req->{chunked} = 1 }, $ep->{ok}],
        ['the body sent in chunks, over the cap', sub {
            $req->{chunked} = 1;
            $req->{raw} = body_text($body) . (' ' x (16 * 1024 + int rand 1024));
        }, 413],
        # Spellings of the media type that are it.
        ['Content-Type spelt otherwise', sub {
            $req->{content_type} = pick('application/json; charset=utf-8', 'Application/JSON', 'application/json ;x=y');
        }, $ep->{ok}],
    );
    return @b;
}

# Breakages of the token of a request that sends one.
sub token_breakages {
    my ($ep, $req) = @_;
    my $token = $req->{token};
    my $user = $ep->{as};
    my @b = (
        ['no Authorization', sub { $req->{token} = undef }, 401],
        ['Authorization twice', sub { $req->{authorization} = "Bearer $token\r\nAuthorization: Bearer $token" }, 401],
        # The scheme's name is not case-sensitive (RFC 9110): still the token.
        ['the scheme in another case', sub { $req->{authorization} = pick('bearer', 'BEARER', 'bEaReR') . " $token" }, $ep->{ok}],
        ['Authorization without a token', sub { $req->{authorization} = pick('Bearer', 'Bearer ', 'Bearer  ') }, 401],
        ['another scheme', sub { $req->{authorization} = pick('Basic aGFycmlldDpwYXNz', "Token $token", "Bearer$token") }, 401],
        ['a character of the token changed', sub {
            # Not the last of a segment, whose low bits base64url may not carry.
            my @at = grep { substr($token, $_ + 1, 1) ne '.' } 0 .. length($token) - 2;
            my $i = pick(@at);
            my $was = substr($token, $i, 1);
            substr($token, $i, 1) = pick(grep { $_ ne $was } ('A' .. 'Z', 'a' .. 'z', '0' .. '9', '-', '_'));
            $req->{token} = $token;
        }, 401],
        ['a token cut short', sub { $req->{token} = substr($token, 0, int rand length $token) }, 401],
        ['an expired token', sub {
            my %claims = %{ jwt_claims($user) };
            $claims{iat} = now() - 7200;
            $claims{exp} = now() - 3600;
            $req->{token} = jwt_forge({alg => 'HS256', typ => 'JWT'}, \%claims, jwt_secret());
        }, 401],
        ['an unsigned token', sub {
            $req->{token} = jwt_forge({alg => pick('none', 'None', 'HS256'), typ => 'JWT'}, jwt_claims($user), undef);
        }, 401],
        ['a token signed with another key', sub {
            $req->{token} = jwt_forge({alg => 'HS256', typ => 'JWT'}, jwt_claims($user), 'k' x 32);
        }, 401],
        ['a token of a deleted user', sub {
            my %claims = %{ jwt_claims($user) };
            @claims{qw(sub user_id)} = ('2147483000', 2147483000);
            $req->{token} = jwt_forge({alg => 'HS256', typ => 'JWT'}, \%claims, jwt_secret());
        }, 401],
        ['a header with another key', sub {
            $req->{token} = jwt_forge({alg => 'HS256', typ => 'JWT', kid => 'x'}, jwt_claims($user), jwt_secret());
        }, 401],
    );
    # Admin rights come from the database, not from the token.
    push @b, ['a user whose token claims admin', sub {
        my %claims = %{ jwt_claims('harriet') };
        $claims{admin} = JSON::PP::true;
        $req->{token} = jwt_forge({alg => 'HS256', typ => 'JWT'}, \%claims, jwt_secret());
    }, 403] if $user eq 'admin';
    return @b;
}

# Breakages of the query and the path.
sub query_breakages {
    my ($ep, $req) = @_;
    my @b;
    if ($ep->{query}) {
        # The parameter set to one of the values, in place of its own (and
        # of page, for after_id); refused with 400 unless the statuses say.
        my $param = sub {
            my ($name, $values, @statuses) = @_;
            @statuses = (400) unless @statuses;
            my $v = pick(@$values);
            return ["$name=$v", sub {
                @{ $req->{query} } = grep { $_->[0] ne $name && !($name eq 'after_id' && $_->[0] eq 'page') } @{ $req->{query} };
                push @{ $req->{query} }, [$name, $v];
            }, @statuses];
        };
        # Values at the edges of what is allowed: a page, empty or not.
        push @b, $param->('page', ['10000000', '1', '%31'], $ep->{ok}),
          $param->('per_page', ['500', '1', '%35'], $ep->{ok});
        push @b, $param->('used', ['true'], $ep->{ok}),
          $param->('batch_id', ['00000000-0000-0000-0000-000000000000', 'FFFFFFFF-FFFF-4FFF-BFFF-FFFFFFFFFFFF'], $ep->{ok}),
          $param->('after_id', ['0', '9223372036854775807'], $ep->{ok})
          if $ep->{name} eq 'codes';
        push @b, $param->('page', ['0', '-1', 'abc', '1.5', '10000001', '', '99999999999999999999', '%00', '1%20', '0x1', '+1', '%zz', '1%', '%E2%80%AE1']),
          $param->('per_page', ['0', '501', 'abc', '-5', '', '1e2', '%31%30%30%30']);
        push @b, ['a parameter twice', sub { push @{ $req->{query} }, [@{ pick(@{ $req->{query} }) }] }, 400];
        if ($ep->{name} eq 'codes') {
            push @b, $param->('used', ['yes', '1', '', 'maybe', 'true%00']),
              $param->('batch_id', ['notauuid', "x'--", '00000000-0000-0000-0000-00000000000g', '']),
              $param->('after_id', ['-1', 'abc', '1.5']);
        }
    }
    if ($ep->{name} eq 'subscription_id') {
        push @b, ['another id, not an admin', sub { $req->{path} = '/subscription/' . pick(user_id('admin'), 2147483000) }, 403],
          ['an id that is not a number', sub {
              $req->{path} = '/subscription/' . pick('abc', '1.5', '-1', '1e3', '%20' . user_id('harriet'), '99999999999999999999', '0x1',
                                                     '%F0%9F%98%80', '%EF%BC%91');
          }, 400, 403],
          # httpd itself refuses a NUL or a slash encoded in a path: 404
          # (in the API's JSON, through ErrorDocument).
          ['a NUL or a slash encoded in the id', sub {
              $req->{path} = '/subscription/' . user_id('harriet') . pick('%00', '%2F', '%2f1');
          }, 404];
    }
    return @b;
}

sub method_breakage {
    my ($ep, $req) = @_;
    my $other = $ep->{method} eq 'GET' ? pick('POST', 'PUT', 'DELETE', 'PATCH') : pick('GET', 'PUT', 'DELETE');
    return ["method $other", sub { $req->{method} = $other }, 405];
}

# One request: [label, its bytes, its statuses, its endpoint].
sub draw_request {
    my $ep = pick(@ENDPOINTS);
    my $req = {
        method => $ep->{method},
        path => ref $ep->{path} ? $ep->{path}->() : $ep->{path},
        query => [map { [@$_] } @{ $ep->{query} || [] }],
        body => $ep->{body} ? $ep->{body}->() : undef,
        content_type => 'application/json',
        token => $ep->{as} ? user_token($ep->{as}) : undef,
    };
    my @breakages;
    push @breakages, field_breakages($ep, $req), body_breakages($ep, $req) if $req->{body};
    push @breakages, token_breakages($ep, $req) if $ep->{as};
    push @breakages, query_breakages($ep, $req), method_breakage($ep, $req);
    my ($label, @statuses) = ('unbroken', $ep->{ok});
    if (rand() >= 0.1) {
        my $breakage = pick(@breakages);
        ($label, my $break, @statuses) = @$breakage;
        $break->();
    }
    my $uri = $req->{path};
    $uri .= '?' . join('&', map { "$_->[0]=$_->[1]" } @{ $req->{query} }) if @{ $req->{query} };
    my $body = $req->{raw} // ($req->{body} ? body_text($req->{body}) : undef);
    my @head = ("$req->{method} $uri HTTP/1.1", 'Host: 127.0.0.1', 'Connection: close');
    push @head, "Authorization: $req->{authorization}" if defined $req->{authorization};
    push @head, "Authorization: Bearer $req->{token}" if defined $req->{token} && !defined $req->{authorization};
    if (defined $body) {
        push @head, "Content-Type: $req->{content_type}" if defined $req->{content_type};
        if ($req->{chunked}) {
            push @head, 'Transfer-Encoding: chunked';
            my $chunked = '';
            while (length $body) {
                my $chunk = substr($body, 0, 1 + int rand 64, '');
                $chunked .= sprintf("%x\r\n%s\r\n", length $chunk, $chunk);
            }
            $body = "${chunked}0\r\n\r\n";
        }
        else {
            push @head, 'Content-Length: ' . length $body;
        }
    }
    return ["$ep->{name}: $label", join('', map { "$_\r\n" } @head) . "\r\n" . ($body // ''), \@statuses, $ep];
}

# What is wrong with an answer to a request of the statuses given, or undef.
sub wrong_answer {
    my ($res, $statuses, $secrets) = @_;
    my $status = $res->{status} // return 'no answer: ' . ($res->{error} // '?');
    return "status $status" unless grep { $_ == $status } @$statuses;
    my %header;
    $header{lc $_->[0]} //= $_->[1] for @{ $res->{headers} };
    return 'not JSON: ' . ($header{'content-type'} // 'no Content-Type')
      unless ($header{'content-type'} // '') =~ m{^application/json\b};
    return 'no nosniff' unless ($header{'x-content-type-options'} // '') eq 'nosniff';
    my $json = $res->{json};
    return 'a body that is not a JSON object' unless ref $json eq 'HASH';
    if ($status >= 400) {
        return 'an error that is not {"error": "..."}'
          unless keys %$json == 1 && defined $json->{error} && !ref $json->{error} && length $json->{error};
    }
    return 'no WWW-Authenticate: Bearer' if $status == 401 && ($header{'www-authenticate'} // '') !~ /^Bearer\b/;
    return 'no Allow' if $status == 405 && !defined $header{allow};
    for my $secret (@$secrets) {
        return "the body holds a secret ($secret->[0])" if index($res->{body}, $secret->[1]) >= 0;
    }
    return 'the body holds SQL or driver text' if $res->{body} =~ /\b(?:SELECT|INSERT|UPDATE|pq_|libpq|SQLSTATE)\b|ERROR: /;
    return;
}

# What is wrong with the answer to one drawn request: [status, codes made,
# why ('' when nothing)], the why with what was sent and what came back.
sub judge {
    my ($request, $res, $secrets) = @_;
    my ($label, $bytes, $statuses, $ep) = @$request;
    my $why = wrong_answer($res, $statuses, $secrets);
    my $status = $res->{status} // 'none';
    return [$status, $ep->{name} eq 'generate' && $status eq '201' ? $res->{json}{count} : 0, '']
      unless $why;
    my $shown = length $bytes > 600 ? substr($bytes, 0, 600) . '...' : $bytes;
    return [$status, 0, "($label; expected @$statuses): $why\n"
              . '  sent: ' . join('\r\n', split /\r\n/, $shown) . "\n"
              . '  got: ' . substr($res->{raw} // '', 0, 600) . "\n"];
}

# Draws $COUNT requests from the seed and sends them from $clients clients
# at once (each client its share, one after another); tallies the answers
# (%Tally) and dies with the first that are wrong. One client: every answer
# is also checked against docs/openapi.yaml (the harness checks the
# exchanges of its own process only).
sub hostile_run {
    my ($clients) = @_;
    srand($SEED + $clients);
    Test::More::diag("hostile.t: seed $SEED, $COUNT requests from $clients client(s)"
                     . " (TEST_REDEEM_SEED=$SEED repeats them)");
    my @secrets = (
        ['the JWT secret', jwt_secret()], ['a password', $PASSWORD],
        ['the admin password', var('ADMIN_PASSWORD')], ['a password', var('USER_PASSWORD')],
        ['a password hash', '$argon2'],
    );
    my @requests = map { draw_request() } 1 .. $COUNT;
    my @results;
    if ($clients == 1) {
        @results = map { judge($_, api_raw_request($_->[1]), \@secrets) } @requests;
    }
    else {
        my $json = JSON::PP->new;
        my @pids;
        for my $k (0 .. $clients - 1) {
            my $pid = fork // die "fork: $!\n";
            if (!$pid) {
                open my $out, '>', var('SERVROOT') . "/hostile.$k" or POSIX::_exit(1);
                for (my $i = $k; $i < @requests; $i += $clients) {
                    print $out $json->encode([$i, @{ judge($requests[$i], api_raw_request($requests[$i][1]), \@secrets) }]), "\n";
                }
                close $out;
                POSIX::_exit(0);
            }
            push @pids, $pid;
        }
        waitpid $_, 0 for @pids;
        for my $k (0 .. $clients - 1) {
            open my $in, '<', var('SERVROOT') . "/hostile.$k" or die "client $k: no results\n";
            while (<$in>) {
                my ($i, @result) = @{ $json->decode($_) };
                $results[$i] = \@result;
            }
        }
        my $lost = grep { !$_ } @results[0 .. $#requests];
        die "$lost requests have no result\n" if $lost;
    }
    my @wrong;
    for my $n (0 .. $#requests) {
        my ($status, $made, $why) = @{ $results[$n] };
        if ($why) { push @wrong, 'request ' . ($n + 1) . " $why"; next }
        $Tally{"$requests[$n][3]{name} $status"}++;
        $Tally{codes_made} += $made;
    }
    Test::More::note(join(', ', map { "$_: $Tally{$_}" } sort keys %Tally));
    die "seed $SEED: " . scalar(@wrong) . " of $COUNT answers wrong:\n" . join('', @wrong[0 .. ($#wrong < 9 ? $#wrong : 9)])
      if @wrong;
    return 1;
}

default_config(<<'CONF');
RedeemRateLimit login-email 60000 60
RedeemRateLimit login-ip 60000 60
RedeemRateLimit register-ip 60000 60
RedeemRateLimit redeem-user 60000 60
RedeemRateLimit redeem-ip 60000 60
CONF

no_shuffle();
run_tests();

__DATA__

=== TEST 1: set-up: harriet registered, codes for her redemptions, the database's state before
--- request
GET /api/health
--- error_code: 200
--- check_eval
user_token('harriet');
user_token('admin');
my $res = api_request('POST', '/admin/generate-codes', qq({"count": @{[2 * $main::COUNT]}}),
                      'Authorization: Bearer ' . user_token('admin'));
die "generate: $res->{status}\n" unless $res->{status} == 201;
@main::Codes = @{ $res->{json}{codes} };
%main::Before = map { $_ => sql($main::STATE{$_}) } keys %main::STATE;
1



=== TEST 2: every hostile request gets one of its statuses, as JSON, with no secret
--- request
GET /api/health
--- error_code: 200
--- check_eval
hostile_run(1)
--- no_error_log
/:(?:warn|error|crit|alert|emerg)\]/



=== TEST 3: the same from eight clients at once (a token refused among the reads of a batch, say)
--- request
GET /api/health
--- error_code: 200
--- check_eval
hostile_run(8)
--- no_error_log
/:(?:warn|error|crit|alert|emerg)\]/



=== TEST 4: the control: every endpoint answered some unbroken requests as it should
--- request
GET /api/health
--- error_code: 200
--- check_eval
my @missing = grep { !$main::Tally{"$_->{name} $_->{ok}"} } @main::ENDPOINTS;
die 'never answered as it should: ' . join(', ', map { $_->{name} } @missing) . "\n" if @missing;
1



=== TEST 5: a user for each 201 of register, and no other
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $want = $main::Tally{'register 201'} // 0;
grown('users') == $want or die grown('users') . " users written, $want registrations answered 201\n";
1



=== TEST 6: a batch, its codes and its audit row for each 201 of generate-codes, and no other
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $batches = $main::Tally{'generate 201'} // 0;
my $codes = $main::Tally{codes_made} // 0;
grown('batches') == $batches or die grown('batches') . " batches stored, $batches answered 201\n";
grown('generated') == $batches or die grown('generated') . " generations audited, $batches answered 201\n";
grown('codes') == $codes or die grown('codes') . " codes stored, $codes in the answers\n";
1



=== TEST 7: a used code and a successful audit row for each 200 of /redeem, all harriet's, and no other
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $want = $main::Tally{'redeem 200'} // 0;
grown('used') == $want or die grown('used') . " codes used, $want redemptions answered 200\n";
grown('redeemed') == $want or die grown('redeemed') . " successful redemptions audited, $want answered 200\n";
my $harriet = user_id('harriet');
sql("SELECT count(*) FROM redeem_codes WHERE used_at IS NOT NULL AND used_by <> $harriet") == 0
  or die "codes used by another user\n";
1



=== TEST 8: harriet's subscription is the codes she used, each extending it from when it was used
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $harriet = user_id('harriet');
sql(subscription_fold_sql($harriet)) eq 't' or die "the subscription does not add up to the codes used\n";
1
