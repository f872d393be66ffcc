package Test::Redeem::OpenAPI;

=head1 NAME

Test::Redeem::OpenAPI - check responses of mod_redeem against docs/openapi.yaml

=head1 SYNOPSIS

    use Test::Redeem::OpenAPI;
    my $v = Test::Redeem::OpenAPI->new("$root/docs/openapi.yaml");
    my @errors = $v->validate_response(
        method  => 'GET',
        path    => '/api/users?page=2',          # base path already stripped
        status  => 200,
        headers => [['Content-Type', 'application/json'], ...],
        body    => $raw_body,                    # bytes, as received
    );
    # () when the response conforms, else readable strings

    my @problems = $v->document_errors;          # is the document itself sound?

=head1 DESCRIPTION

=head2 OpenAPI 3.1 with Debian 12's JSON::Validator

The document is OpenAPI 3.1. JSON::Validator 5.14 (libjson-validator-perl)
knows OpenAPI 2.0 and 3.0 only: C<JSON::Validator::Schema::OpenAPIv3> checks
a document against the bundled 3.0 meta-schema, whose C<openapi> must match
C<^3\.0\.\d>, whose Schema Objects have a single C<type> and C<nullable>;
there is no 3.1 meta-schema and no draft 2020-12 class. So:

=over

=item *

This module does the OpenAPI part itself: path and method matching, status
lookup, headers, media types, C<$ref> between OpenAPI objects.

=item *

Every Schema Object goes to C<JSON::Validator::Schema::Draft201909>, whose
keywords match 2020-12 (3.1's default dialect) for everything the document
uses: C<type> arrays (C<[string, 'null']>), C<const>, C<enum>, C<pattern>,
C<minLength>/C<maxLength>, C<minimum>/C<maximum>, C<if>/C<then>/C<else>,
C<allOf>/C<anyOf>/C<oneOf>/C<not>, C<$ref> (with sibling keywords),
C<required>, C<properties>, C<additionalProperties>, C<items>,
C<minItems>/C<maxItems>. C<document_errors> refuses what 2019-09 lacks or
reads otherwise (C<prefixItems>, C<$dynamicRef>, C<$dynamicAnchor>,
C<unevaluatedProperties>, C<unevaluatedItems>).

=item *

The document itself is checked by C<document_errors> against a meta-schema
written here from the 3.1 specification (the objects and their fields, closed
but for C<x-> extensions; Schema Objects limited to 2020-12 and OpenAPI
keywords), plus what a meta-schema cannot say (see there).

=back

=head2 Speed: the fast checks

JSON::Validator spends some 30 microseconds a schema node (a page of 500
listed codes: 0.3 s and more; the 100,000 codes of one generation: seconds).
Each Schema Object is therefore also compiled, once, into closures that only
say yes or no, for the keywords listed above (a schema with any other keyword,
C<format> for one, is left to JSON::Validator). A yes is the answer; a no is
handed to JSON::Validator, whose messages are the ones reported. C<engine>
(an argument of C<validate_response>, or C<$ENV{TEST_REDEEM_OPENAPI_ENGINE}>)
chooses: C<fast> (the default), C<json-validator> (JSON::Validator alone, the
reference), C<fast-strict> (as C<fast>, and a no that JSON::Validator does not
confirm is an error: t/openapi.t runs every sample so, and through
C<json-validator>). JSON bodies are decoded with Mojo::JSON (strict, 4 to 5
times faster than JSON::PP).

The document is read and compiled once per process and file (kept while its
size and mtime stay the same); each (operation, status) is prepared on first
use and cached, so are path matches and schema checks.

=head2 Rules of validate_response

=over

=item *

The path is taken as httpd hands it to the module: query and fragment
dropped, an absolute-form C<scheme://host> dropped, C<%XX> decoded, slashes
merged, dot segments resolved. Path templates (C</subscription/{user_id}>)
match one non-empty segment; paths match exactly (no trailing slash).

=item *

HEAD is checked as the document's GET of that path: status and headers only,
no body (a Content-Type, when present, must still be a documented one).

=item *

A path that is not in the document is an error unless the status is 404 or
405; a documented path asked with a method it does not have is an error unless
the status is 405 or 404. Those answers are checked against the document's
C<x-unmatched-responses> (a closed error body and the common headers); a 405 on
a documented path must also name in C<Allow> exactly the path's methods (GET
counting as C<GET, HEAD>).

=item *

A status must be documented for the operation (exactly, as C<4XX>, or by
C<default>).

=item *

Each documented header is looked up case-insensitively (repeated fields are
joined with C<, >); a C<required> one must be present, and a present one must
match its schema (an integer schema takes the decimal string). Undocumented
headers are allowed, as OpenAPI says.

=item *

A body must come with one C<Content-Type> whose media type (parameters
ignored) is one the response documents, must be JSON for a JSON media type
(strict UTF-8, one value), and must match the schema.

=back

Each error names the request and the status (C<GET /api/users -E<gt> 200: body
/users/0/created_at: String does not match ...>).

=head1 METHODS

C<new($file)> (or C<new(\%document)>), C<validate_response(%response)>,
C<document_errors()>, C<document()> (the data), C<operations()> (C<[METHOD,
template]> pairs), C<deref($node)> (follows a Reference Object),
C<fast_check($schema)> (the compiled check of a Schema Object, or undef).

=cut

use strict;
use warnings;

use B ();
use Carp qw(croak);
use Scalar::Util ();
use JSON::PP ();
use JSON::Validator::Schema::Draft201909;
use Mojo::JSON ();    # JSON::Validator's own JSON: 4 to 5 times faster than JSON::PP here
use YAML::XS ();

our $VERSION = '1.00';

my @METHODS = qw(get put post delete options head patch trace);
my %COMPILED;    # "file\0size\0mtime" => the state shared by every object of that file
# 'fast' (default): the compiled checks, JSON::Validator explaining any failure;
# 'json-validator': JSON::Validator for everything (the reference, slower);
# 'fast-strict': as 'fast', and a failure JSON::Validator cannot explain is an
# error too (for t/openapi.t: the two must agree).
our $ENGINE = $ENV{TEST_REDEEM_OPENAPI_ENGINE} || 'fast';

sub new {
    my ($class, $source) = @_;
    croak 'usage: Test::Redeem::OpenAPI->new($openapi_yaml)' unless defined $source;
    # A data structure instead of a file: for tests of the document checks.
    return bless { %{ _compile($source, '(data)') } }, $class if ref $source eq 'HASH';
    my @st = stat $source or croak "cannot read $source: $!";
    my $key = join "\0", $source, @st[7, 9];
    my $self = $COMPILED{$key} ||= _compile(_load($source), $source);
    return bless { %$self }, $class;    # shares the caches, which are references
}

sub _load {
    my ($file) = @_;
    local $YAML::XS::Boolean = 'JSON::PP';    # true/false as JSON booleans
    return YAML::XS::LoadFile($file);
}

sub _compile {
    my ($doc, $file) = @_;
    croak "$file: not an OpenAPI document (no mapping at the top)" unless ref $doc eq 'HASH';

    my $self = { file => $file, doc => $doc, plans => {}, matches => {}, fast => {} };
    my @bad_refs = _unresolved_refs($doc);
    croak "$file: unresolved \$ref: @bad_refs" if @bad_refs;

    # JSON::Validator resolves every $ref of the whole document once; schemas
    # are then validated in place, so that their $refs keep working.
    $self->{jv} = JSON::Validator::Schema::Draft201909->new($doc);

    # The path templates, most literal first (OpenAPI: concrete paths win).
    my @routes;
    for my $path (keys %{ $doc->{paths} || {} }) {
        next unless $path =~ m{^/};
        my $item = _deref($doc, $doc->{paths}{$path});
        my $re = join '', map { /^\{[^}]+\}$/ ? '([^/]+)' : quotemeta } split /(\{[^}]+\})/, $path;
        my @methods = grep { $item->{$_} } @METHODS;
        push @routes, { template => $path, re => qr/\A$re\z/, item => $item, methods => \@methods,
                        literal => ($path !~ /\{/ ? 1 : 0) };
    }
    $self->{routes} = [sort { $b->{literal} <=> $a->{literal} || $a->{template} cmp $b->{template} } @routes];
    return $self;
}

# ------------------------------------------------------------------ accessors

sub document { return $_[0]{doc} }

# [METHOD, template] of every operation, in document order of methods.
sub operations {
    my ($self) = @_;
    return map { my $r = $_; map { [uc $_, $r->{template}] } @{ $r->{methods} } }
      sort { $a->{template} cmp $b->{template} } @{ $self->{routes} };
}

# Follows a Reference Object ($ref, local JSON pointer) to what it names.
sub deref { my ($self, $node) = @_; return _deref($self->{doc}, $node) }

sub _deref {
    my ($doc, $node) = @_;
    my %seen;
    while (ref $node eq 'HASH' && defined $node->{'$ref'} && !ref $node->{'$ref'}) {
        my $ref = $node->{'$ref'};
        croak "\$ref loop at $ref" if $seen{$ref}++;
        $node = _pointer($doc, $ref);
        croak "unresolved \$ref: $ref" unless defined $node;
    }
    return $node;
}

sub _pointer {
    my ($doc, $ref) = @_;
    return undef unless $ref =~ s{^#}{};
    my $node = $doc;
    for my $part (grep { length } split m{/}, $ref) {
        $part =~ s/~1/\//g;
        $part =~ s/~0/~/g;
        if (ref $node eq 'HASH') { return undef unless exists $node->{$part}; $node = $node->{$part} }
        elsif (ref $node eq 'ARRAY') { return undef unless $part =~ /^\d+$/ && $part < @$node; $node = $node->[$part] }
        else { return undef }
    }
    return $node;
}

sub _unresolved_refs {
    my ($doc) = @_;
    my @bad;
    my @todo = ($doc);
    while (@todo) {
        my $node = shift @todo;
        if (ref $node eq 'HASH') {
            if (defined $node->{'$ref'} && !ref $node->{'$ref'}) {
                push @bad, $node->{'$ref'} unless defined _pointer($doc, $node->{'$ref'});
            }
            push @todo, grep { ref } values %$node;
        }
        elsif (ref $node eq 'ARRAY') {
            push @todo, grep { ref } @$node;
        }
    }
    return sort @bad;
}

# ------------------------------------------------------------------ responses

# A response must be the operation's; failing that, one httpd itself gives on
# any path (x-httpd-responses: a malformed request, a URI too long, an encoded
# slash...), which the module's redeem-error handler writes in the API's form.
sub validate_response {
    my ($self, %res) = @_;
    my @errors = $self->_validate_response(%res);
    my $httpd = $self->{doc}{'x-httpd-responses'} || {};
    return @errors unless @errors && $httpd->{ $res{status} // '' };
    return $self->_validate_response(%res, httpd => 1) ? @errors : ();
}

sub _validate_response {
    my ($self, %res) = @_;
    local $self->{engine} = $res{engine} // $ENGINE;
    my $method = uc($res{method} // '');
    my $status = $res{status} // '';
    my $path = _server_path($res{path} // '');
    my $label = "$method $path -> $status";
    return ("$label: no status") unless $status =~ /^[1-5]\d\d$/;

    my ($plan, $error) = $self->_plan($method, $path, $status, $res{httpd});
    return ("$label: $error") if $error;

    my @errors;
    my %headers;
    for my $h (@{ $res{headers} || [] }) {
        my $name = lc $h->[0];
        $headers{$name} = exists $headers{$name} ? "$headers{$name}, $h->[1]" : $h->[1];
    }
    for my $check (@{ $plan->{headers} }) {
        my $value = $headers{ $check->{lc} };
        if (!defined $value) {
            push @errors, "header $check->{name} is missing" if $check->{required};
            next;
        }
        push @errors, map { "header $check->{name}: $_" } $check->{check}->($value);
    }
    if ($plan->{allow}) {
        my $want = join ', ', @{ $plan->{allow} };
        my $got = join ', ', sort map { s/^\s+|\s+$//gr } split /,/, $headers{allow} // '';
        push @errors, "header Allow: '" . ($headers{allow} // '') . "' does not name exactly $want"
          if defined $headers{allow} && $got ne $want;
    }

    my $head = $method eq 'HEAD';
    my $content = $plan->{content};
    my $body = $res{body} // '';
    my $ctype = $headers{'content-type'};
    if (!$content) {
        push @errors, 'a body where the document has none (' . length($body) . ' bytes)'
          if length $body && !$head;
    }
    elsif (!defined $ctype) {
        push @errors, 'no Content-Type (documented: ' . join(', ', sort keys %$content) . ')'
          unless $head;
    }
    else {
        my $media = lc($ctype =~ s/;.*//sr =~ s/^\s+|\s+$//gr);
        my $media_plan = $content->{$media};
        if (!$media_plan) {
            push @errors, "Content-Type '$ctype' is not documented (documented: "
              . join(', ', sort keys %$content) . ')';
        }
        elsif (!$head) {
            push @errors, $self->_check_body($media, $media_plan, $body);
        }
    }
    return map { "$label: $_" } @errors;
}

# The path as httpd hands it to the module: no query or fragment, no
# scheme://authority (absolute-form), %XX decoded, slashes merged, dot
# segments resolved.
sub _server_path {
    my ($path) = @_;
    $path =~ s/[?#].*//s;
    $path =~ s{\A[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*}{};
    $path =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    my @out;
    for my $seg (split m{/+}, $path, -1) {
        next if $seg eq '.' || $seg eq '';
        if ($seg eq '..') { pop @out; next }
        push @out, $seg;
    }
    my $clean = '/' . join '/', @out;
    $clean .= '/' if @out && $path =~ m{/\.{0,2}\z};    # a trailing slash stays
    return $clean;
}

sub _check_body {
    my ($self, $media, $media_plan, $body) = @_;
    return unless $media_plan->{schema};
    my $data = $body;
    if ($media =~ m{^application/(?:[\w.+-]+\+)?json$}) {
        return ('empty body, JSON expected') unless length $body;
        # Strict: UTF-8, one value, nothing after it ("null" decodes to undef).
        $data = eval { Mojo::JSON::decode_json($body) };
        if ($@) {
            my $why = $@ =~ s/ at \S+ line \d+.*//sr;
            chomp $why;
            return ('body is not JSON: ' . $why . ': ' . _excerpt($body));
        }
    }
    return map { "body $_" } $self->_schema_errors($data, $media_plan->{schema});
}

# JSON::Validator's errors for $data, unless the fast check passes it first.
sub _schema_errors {
    my ($self, $data, $schema) = @_;
    my $check = $self->{engine} ne 'json-validator' && $self->_fast($schema);
    return () if $check && $check->($data);
    my @errors = $self->{jv}->validate($data, $schema);
    return ('/: the fast check refuses what JSON::Validator accepts')
      if $check && !@errors && $self->{engine} eq 'fast-strict';
    return @errors;
}

# The fast check of a Schema Object of the document: a code reference, or
# undef when JSON::Validator must do it alone.
sub fast_check { my ($self, $schema) = @_; return $self->_fast($schema) }

sub _excerpt {
    my ($text) = @_;
    $text = substr($text, 0, 120) . '...' if length $text > 120;
    $text =~ s/([^\x20-\x7e])/sprintf '\\x%02x', ord $1/ge;
    return $text;
}

# What a (method, path, status) must look like: cached per template and status.
sub _plan {
    my ($self, $method, $path, $status, $httpd) = @_;
    my $route = $self->_route($path);
    my ($op_key, $response, $allow);
    if ($httpd) {
        $op_key = "httpd $status";
        return ($self->{plans}{$op_key}) if $self->{plans}{$op_key};
        $response = $self->{doc}{'x-httpd-responses'}{$status};
        $route = undef;
        goto PLAN;
    }
    # HEAD is the GET of the path, unless the document has a HEAD of its own.
    my $lookup_method = lc $method;
    $lookup_method = 'get' if $route && $lookup_method eq 'head' && !$route->{item}{head};
    if ($route && $route->{item}{$lookup_method}) {
        $op_key = "$lookup_method $route->{template} $status";
        return ($self->{plans}{$op_key}) if $self->{plans}{$op_key};
        my $responses = $route->{item}{$lookup_method}{responses} || {};
        ($response) = map { $responses->{$_} } grep { exists $responses->{$_} } $status,
          substr($status, 0, 1) . 'XX', 'default';
        return (undef, "status $status is not documented for " . uc($lookup_method)
                         . " $route->{template} (documented: "
                         . join(', ', sort grep { !/^x-/ } keys %$responses) . ')')
          unless $response;
    }
    else {
        my $unmatched = $self->{doc}{'x-unmatched-responses'} || {};
        if ($route) {
            return (undef, "method $method is not documented for $route->{template} (it has "
                             . join(', ', map { uc } @{ $route->{methods} }) . ')')
              unless $status == 405 || $status == 404;
            if ($status == 405) {
                my %methods = map { $_ eq 'get' ? ('GET' => 1, 'HEAD' => 1) : (uc($_) => 1) }
                  @{ $route->{methods} };
                $allow = [sort keys %methods];
            }
        }
        else {
            return (undef, "no path of the document matches (status $status)")
              unless $status == 404 || $status == 405;
        }
        $response = $unmatched->{$status};
        return (undef, "the document has no x-unmatched-responses for $status") unless $response;
        $op_key = 'unmatched ' . ($route ? $route->{template} : '') . " $status";
        return ($self->{plans}{$op_key}) if $self->{plans}{$op_key};
    }

  PLAN:
    $response = $self->deref($response);
    my @headers;
    for my $name (sort keys %{ $response->{headers} || {} }) {
        next if lc $name eq 'content-type';    # OpenAPI ignores it: content says it
        my $header = $self->deref($response->{headers}{$name});
        push @headers, { name => $name, lc => lc $name, required => $header->{required} ? 1 : 0,
                         check => $self->_header_check($header) };
    }
    my %content;
    for my $media (keys %{ $response->{content} || {} }) {
        $content{ lc $media } = { schema => $response->{content}{$media}{schema} };
    }
    return ($self->{plans}{$op_key} = {
        headers => \@headers,
        content => %content ? \%content : undef,
        allow => $allow,
    });
}

sub _route {
    my ($self, $path) = @_;
    my $matches = $self->{matches};
    return $matches->{$path} if exists $matches->{$path};
    %$matches = () if keys %$matches > 5000;    # many distinct /subscription/{id}
    for my $route (@{ $self->{routes} }) {
        return $matches->{$path} = $route if $path =~ $route->{re};
    }
    return $matches->{$path} = undef;
}

# A header's value is a string; an integer or number schema takes its decimal form.
sub _header_check {
    my ($self, $header) = @_;
    my $schema = $header->{schema};
    return sub { () } unless $schema;
    my $resolved = $self->deref($schema);
    my $type = ref $resolved eq 'HASH' ? $resolved->{type} // '' : '';
    return sub {
        my ($value) = @_;
        my $data = $value;
        if ($type eq 'integer' || $type eq 'number') {
            my $re = $type eq 'integer' ? qr/\A-?\d+\z/ : qr/\A-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\z/;
            return ("'$value' is not " . ($type eq 'integer' ? 'an integer' : 'a number'))
              unless $value =~ $re;
            $data = 0 + $value;
        }
        elsif ($type eq 'boolean') {
            return ("'$value' is not true or false") unless $value =~ /\A(?:true|false)\z/;
            $data = $value eq 'true' ? JSON::PP::true : JSON::PP::false;
        }
        return map { "'$value': " . ($_->message) } $self->_schema_errors($data, $schema);
    };
}

# ------------------------------------------------------------------ the fast checks

# JSON::Validator costs some 30 microseconds a schema node, which makes a
# listing of 500 codes take 0.3 s and the 100,000 codes of a generation
# seconds. The document's schemas are therefore also compiled into closures
# that only say yes or no; a no is explained by JSON::Validator, so every
# message still comes from it, and a yes is only given for a schema made of
# keywords listed below (anything else: undef, and JSON::Validator does all).
# t/openapi.t checks that both agree on every sample, good and broken.

my %ANNOTATION = map { $_ => 1 } qw(description title examples example default deprecated
                                    readOnly writeOnly $comment);

# JSON types as JSON::Validator sees them (no numeric operation on a string).
sub _json_type {
    my $ref = ref $_[0];
    return 'object' if $ref eq 'HASH';
    return 'array' if $ref eq 'ARRAY';
    return 'boolean' if $ref && Scalar::Util::blessed($_[0]) && $_[0]->isa('JSON::PP::Boolean');
    return 'other' if $ref;
    return 'null' unless defined $_[0];
    return B::svref_2object(\$_[0])->FLAGS & (B::SVp_IOK | B::SVp_NOK) ? 'number' : 'string';
}

sub _json_equal {
    my ($x, $y) = @_;
    my ($tx, $ty) = (_json_type($x), _json_type($y));
    return 0 unless $tx eq $ty;
    return 1 if $tx eq 'null';
    return !!$x == !!$y if $tx eq 'boolean';
    return $x == $y if $tx eq 'number';
    return $x eq $y if $tx eq 'string';
    if ($tx eq 'array') {
        return 0 unless @$x == @$y;
        _json_equal($x->[$_], $y->[$_]) || return 0 for 0 .. $#$x;
        return 1;
    }
    if ($tx eq 'object') {
        return 0 unless keys %$x == keys %$y;
        exists $y->{$_} && _json_equal($x->{$_}, $y->{$_}) || return 0 for keys %$x;
        return 1;
    }
    return 0;
}

# The check of a schema: a closure returning true for valid data, or undef
# when the schema uses a keyword the fast path does not implement.
sub _fast {
    my ($self, $schema) = @_;
    my $cache = $self->{fast};
    return $cache->{$schema} if exists $cache->{$schema};
    my $compiled;
    $cache->{$schema} = sub { $compiled->(@_) };    # a $ref cycle calls this before it is done
    $compiled = eval { $self->_fast_compile($schema) };
    return $cache->{$schema} = $compiled;    # undef: not for the fast path
}

sub _fast_compile {
    my ($self, $schema) = @_;
    return sub { 1 } if JSON::PP::is_bool($schema) && $schema;
    return sub { 0 } if JSON::PP::is_bool($schema);
    die "not a schema\n" unless ref $schema eq 'HASH';
    my @checks;
    my %s = %$schema;
    delete @s{ grep { $ANNOTATION{$_} } keys %s };

    if (defined(my $ref = delete $s{'$ref'})) {
        die "remote \$ref\n" unless $ref =~ /^#/;
        my $target = _pointer($self->{doc}, $ref) // die "unresolved\n";
        my $check = $self->_fast($target) // die "\$ref to a schema the fast path cannot do\n";
        push @checks, $check;
    }
    if (defined(my $type = delete $s{type})) {
        my %want = map { $_ => 1 } ref $type ? @$type : $type;
        my $integer = $want{integer};
        push @checks, sub {
            my $t = _json_type($_[0]);
            return 1 if $want{$t};
            return $t eq 'number' && $integer && $_[0] =~ /\A-?\d+\z/;
        };
    }
    if (exists $s{const}) {
        my $const = delete $s{const};
        push @checks, sub { _json_equal($_[0], $const) };
    }
    if (defined(my $enum = delete $s{enum})) {
        push @checks, sub { for my $e (@$enum) { return 1 if _json_equal($_[0], $e) } 0 };
    }

    # string
    my ($min_len, $max_len, $pattern) = delete @s{qw(minLength maxLength pattern)};
    if (defined $min_len || defined $max_len || defined $pattern) {
        my $re = defined $pattern ? qr/$pattern/ : undef;
        push @checks, sub {
            return 1 unless _json_type($_[0]) eq 'string';
            return 0 if defined $min_len && length($_[0]) < $min_len;
            return 0 if defined $max_len && length($_[0]) > $max_len;
            return !$re || $_[0] =~ $re;
        };
    }
    # number
    my ($min, $max, $xmin, $xmax) = delete @s{qw(minimum maximum exclusiveMinimum exclusiveMaximum)};
    if (defined $min || defined $max || defined $xmin || defined $xmax) {
        push @checks, sub {
            return 1 unless _json_type($_[0]) eq 'number';
            return 0 if defined $min && $_[0] < $min;
            return 0 if defined $max && $_[0] > $max;
            return 0 if defined $xmin && $_[0] <= $xmin;
            return 0 if defined $xmax && $_[0] >= $xmax;
            return 1;
        };
    }
    # array
    my ($min_items, $max_items, $items) = delete @s{qw(minItems maxItems items)};
    if (defined $min_items || defined $max_items || defined $items) {
        die "items as a list\n" if ref $items eq 'ARRAY';
        my $item = defined $items ? ($self->_fast($items) // die "items\n") : undef;
        push @checks, sub {
            return 1 unless ref $_[0] eq 'ARRAY';
            my $n = @{ $_[0] };
            return 0 if defined $min_items && $n < $min_items;
            return 0 if defined $max_items && $n > $max_items;
            if ($item) { $item->($_) || return 0 for @{ $_[0] } }
            return 1;
        };
    }
    # object
    my ($props, $required, $additional) = delete @s{qw(properties required additionalProperties)};
    if (defined $props || defined $required || defined $additional) {
        my %prop = map { $_ => ($self->_fast($props->{$_}) // die "properties\n") } keys %{ $props || {} };
        my @required = @{ $required || [] };
        my ($closed, $extra);
        if (defined $additional) {
            if (JSON::PP::is_bool($additional)) { $closed = !$additional }
            else { $extra = $self->_fast($additional) // die "additionalProperties\n" }
        }
        push @checks, sub {
            my $o = $_[0];
            return 1 unless ref $o eq 'HASH';
            exists $o->{$_} || return 0 for @required;
            for my $k (keys %$o) {
                if (my $p = $prop{$k}) { $p->($o->{$k}) || return 0 }
                elsif ($closed) { return 0 }
                elsif ($extra) { $extra->($o->{$k}) || return 0 }
            }
            return 1;
        };
    }
    # applicators
    for my $kw (qw(allOf anyOf oneOf)) {
        my $list = delete $s{$kw} // next;
        my @sub = map { $self->_fast($_) // die "$kw\n" } @$list;
        push @checks, $kw eq 'allOf' ? sub { $_->($_[0]) || return 0 for @sub; 1 }
                    : $kw eq 'anyOf' ? sub { $_->($_[0]) && return 1 for @sub; 0 }
                    : sub { my $n = grep { $_->($_[0]) } @sub; $n == 1 };
    }
    if (defined(my $not = delete $s{not})) {
        my $check = $self->_fast($not) // die "not\n";
        push @checks, sub { !$check->($_[0]) };
    }
    my ($if, $then, $else) = delete @s{qw(if then else)};
    if (defined $if) {
        my $c_if = $self->_fast($if) // die "if\n";
        my $c_then = defined $then ? ($self->_fast($then) // die "then\n") : undef;
        my $c_else = defined $else ? ($self->_fast($else) // die "else\n") : undef;
        push @checks, sub {
            return $c_if->($_[0]) ? (!$c_then || $c_then->($_[0])) : (!$c_else || $c_else->($_[0]));
        };
    }

    die 'keywords ' . join(', ', sort keys %s) . "\n" if %s;    # format, patternProperties, ...
    return sub { 1 } unless @checks;
    return $checks[0] if @checks == 1;
    return sub { $_->($_[0]) || return 0 for @checks; 1 };
}

# ------------------------------------------------------------------ the document itself

# Problems of the document as OpenAPI 3.1, as far as can be checked here: its
# structure (a meta-schema of this module's own, written from the 3.1
# specification: the objects the document may use, with their fields), Schema
# Objects limited to JSON Schema 2020-12 keywords with well-formed values,
# every $ref resolving, path templates and path parameters agreeing, unique
# operationIds, patterns that compile, and required properties that a closed
# object can hold.
sub document_errors {
    my ($self) = @_;
    my $doc = $self->{doc};
    my @errors;

    push @errors, map { "structure $_" } _meta()->validate($doc);
    push @errors, map { "unresolved \$ref $_" } _unresolved_refs($doc);

    my %op_ids;
    for my $route (@{ $self->{routes} }) {
        my $t = $route->{template};
        my %in_template = map { $_ => 1 } $t =~ /\{([^}]+)\}/g;
        for my $m (@{ $route->{methods} }) {
            my $op = $route->{item}{$m};
            next unless ref $op eq 'HASH';
            my $label = uc($m) . " $t";
            if (defined(my $id = $op->{operationId})) {
                push @errors, "$label: operationId $id is used twice" if $op_ids{$id}++;
            }
            my %declared;
            for my $p (@{ $route->{item}{parameters} || [] }, @{ $op->{parameters} || [] }) {
                my $param = eval { $self->deref($p) } or next;
                next unless ($param->{in} // '') eq 'path';
                $declared{ $param->{name} } = 1;
                push @errors, "$label: path parameter $param->{name} is not in the template"
                  unless $in_template{ $param->{name} };
            }
            push @errors, map { "$label: {$_} has no path parameter" } grep { !$declared{$_} } sort keys %in_template;
        }
    }

    _walk_schemas($self, $doc, sub {
        my ($schema, $where) = @_;
        if (defined $schema->{pattern}) {
            push @errors, "$where: pattern does not compile: $@" unless eval { qr/$schema->{pattern}/; 1 };
        }
        for my $kw (qw(prefixItems $dynamicRef $dynamicAnchor unevaluatedProperties unevaluatedItems)) {
            push @errors, "$where: $kw is not supported by the validator (JSON::Validator 5.14)"
              if exists $schema->{$kw};
        }
        if (JSON::PP::is_bool($schema->{additionalProperties}) && !$schema->{additionalProperties}) {
            my %props = map { $_ => 1 } keys %{ $schema->{properties} || {} };
            push @errors, map { "$where: required $_ is not among the properties of a closed object" }
              grep { !$props{$_} } @{ $schema->{required} || [] };
        }
    });
    return @errors;
}

# Calls $cb->($schema, $where) for every Schema Object of the document.
sub _walk_schemas {
    my ($self, $doc, $cb) = @_;
    my @todo;
    my $add_media = sub {
        my ($content, $where) = @_;
        push @todo, map { [$content->{$_}{schema}, "$where/content/$_/schema"] }
          grep { ref $content->{$_} eq 'HASH' && $content->{$_}{schema} } keys %{ $content || {} };
    };
    my $add_header_like = sub {
        my ($obj, $where) = @_;
        return unless ref $obj eq 'HASH';
        push @todo, [$obj->{schema}, "$where/schema"] if $obj->{schema};
        $add_media->($obj->{content}, $where);
    };
    my $add_response = sub {
        my ($resp, $where) = @_;
        return unless ref $resp eq 'HASH';
        $add_header_like->($resp->{headers}{$_}, "$where/headers/$_") for keys %{ $resp->{headers} || {} };
        $add_media->($resp->{content}, $where);
    };
    my $c = $doc->{components} || {};
    push @todo, map { [$c->{schemas}{$_}, "#/components/schemas/$_"] } keys %{ $c->{schemas} || {} };
    $add_header_like->($c->{headers}{$_}, "#/components/headers/$_") for keys %{ $c->{headers} || {} };
    $add_header_like->($c->{parameters}{$_}, "#/components/parameters/$_") for keys %{ $c->{parameters} || {} };
    $add_response->($c->{responses}{$_}, "#/components/responses/$_") for keys %{ $c->{responses} || {} };
    $add_media->($c->{requestBodies}{$_}{content}, "#/components/requestBodies/$_")
      for grep { ref $c->{requestBodies}{$_} eq 'HASH' } keys %{ $c->{requestBodies} || {} };
    for my $path (keys %{ $doc->{paths} || {} }) {
        my $item = $doc->{paths}{$path};
        next unless ref $item eq 'HASH';
        $add_header_like->($_, "paths $path parameter") for @{ $item->{parameters} || [] };
        for my $m (grep { ref $item->{$_} eq 'HASH' } @METHODS) {
            my $op = $item->{$m};
            my $where = uc($m) . " $path";
            $add_header_like->($_, "$where parameter") for @{ $op->{parameters} || [] };
            $add_media->($op->{requestBody}{content}, "$where requestBody") if ref $op->{requestBody} eq 'HASH';
            $add_response->($op->{responses}{$_}, "$where $_") for keys %{ $op->{responses} || {} };
        }
    }
    my %seen;
    while (my $next = shift @todo) {
        my ($schema, $where) = @$next;
        next unless ref $schema eq 'HASH';
        next if $seen{$schema}++;
        $cb->($schema, $where);
        for my $kw (qw(items not if then else additionalProperties propertyNames contains)) {
            push @todo, [$schema->{$kw}, "$where/$kw"] if ref $schema->{$kw} eq 'HASH';
        }
        for my $kw (qw(allOf anyOf oneOf)) {
            my $list = $schema->{$kw};
            push @todo, map { [$list->[$_], "$where/$kw/$_"] } 0 .. $#$list if ref $list eq 'ARRAY';
        }
        for my $kw (qw(properties patternProperties $defs dependentSchemas)) {
            my $map = $schema->{$kw};
            push @todo, map { [$map->{$_}, "$where/$kw/$_"] } keys %$map if ref $map eq 'HASH';
        }
    }
}

my $META;
sub _meta {
    return $META ||= JSON::Validator::Schema::Draft201909->new(_meta_schema());
}

# A meta-schema for the OpenAPI 3.1 objects (OpenAPI Specification 3.1.0,
# section 4.8), closed except for ^x- extensions, and for Schema Objects
# (JSON Schema 2020-12 keywords plus OpenAPI's discriminator, xml,
# externalDocs, example).
sub _meta_schema {
    my $false = JSON::PP::false;
    my $ext = { '^x-' => {} };
    my $ref_or = sub { { anyOf => [{ '$ref' => '#/$defs/reference' }, { '$ref' => "#/\$defs/$_[0]" }] } };
    my $map_of = sub {
        { type => 'object',
          propertyNames => { pattern => '^[a-zA-Z0-9._-]+$' },
          additionalProperties => $_[0] }
    };
    my $string = { type => 'string' };
    my $bool = { type => 'boolean' };
    my $nonneg = { type => 'integer', minimum => 0 };
    my $schema_ref = { '$ref' => '#/$defs/schema' };
    my $schema_list = { type => 'array', minItems => 1, items => $schema_ref };
    my $types = [qw(null boolean object array number string integer)];
    my %schema_keywords = (
        # core
        '$schema' => $string, '$id' => $string, '$ref' => $string, '$anchor' => $string,
        '$dynamicRef' => $string, '$dynamicAnchor' => $string, '$comment' => $string,
        '$vocabulary' => { type => 'object' },
        '$defs' => { type => 'object', additionalProperties => $schema_ref },
        # applicators
        allOf => $schema_list, anyOf => $schema_list, oneOf => $schema_list, not => $schema_ref,
        if => $schema_ref, then => $schema_ref, else => $schema_ref,
        dependentSchemas => { type => 'object', additionalProperties => $schema_ref },
        prefixItems => $schema_list, items => $schema_ref, contains => $schema_ref,
        properties => { type => 'object', additionalProperties => $schema_ref },
        patternProperties => { type => 'object', additionalProperties => $schema_ref },
        additionalProperties => $schema_ref, propertyNames => $schema_ref,
        unevaluatedItems => $schema_ref, unevaluatedProperties => $schema_ref,
        # validation
        type => { anyOf => [{ enum => $types },
                            { type => 'array', minItems => 1, uniqueItems => JSON::PP::true,
                              items => { enum => $types } }] },
        enum => { type => 'array', minItems => 1 }, const => {},
        multipleOf => { type => 'number', exclusiveMinimum => 0 },
        maximum => { type => 'number' }, exclusiveMaximum => { type => 'number' },
        minimum => { type => 'number' }, exclusiveMinimum => { type => 'number' },
        maxLength => $nonneg, minLength => $nonneg, pattern => $string,
        maxItems => $nonneg, minItems => $nonneg, uniqueItems => $bool,
        maxContains => $nonneg, minContains => $nonneg,
        maxProperties => $nonneg, minProperties => $nonneg,
        required => { type => 'array', uniqueItems => JSON::PP::true, items => $string },
        dependentRequired => { type => 'object',
                               additionalProperties => { type => 'array', items => $string } },
        # format, content, meta-data
        format => $string, contentEncoding => $string, contentMediaType => $string,
        contentSchema => $schema_ref,
        title => $string, description => $string, default => {}, deprecated => $bool,
        readOnly => $bool, writeOnly => $bool, examples => { type => 'array' },
        # OpenAPI's own
        discriminator => { type => 'object', required => ['propertyName'] },
        xml => { type => 'object' }, externalDocs => { '$ref' => '#/$defs/externalDocs' },
        example => {},
    );
    my $obj = sub {
        my (%spec) = @_;
        return { type => 'object', additionalProperties => $false, patternProperties => $ext, %spec };
    };
    my %ops = map { $_ => { '$ref' => '#/$defs/operation' } } @METHODS;
    return {
        '$schema' => 'https://json-schema.org/draft/2019-09/schema',
        %{ $obj->(
            required => [qw(openapi info)],
            anyOf => [{ required => ['paths'] }, { required => ['components'] }, { required => ['webhooks'] }],
            properties => {
                openapi => { type => 'string', pattern => '^3\.1\.\d+(-.+)?$' },
                info => { '$ref' => '#/$defs/info' },
                jsonSchemaDialect => $string,
                servers => { type => 'array', items => { '$ref' => '#/$defs/server' } },
                paths => { '$ref' => '#/$defs/paths' },
                webhooks => { type => 'object', additionalProperties => $ref_or->('pathItem') },
                components => { '$ref' => '#/$defs/components' },
                security => { type => 'array', items => { '$ref' => '#/$defs/securityRequirement' } },
                tags => { type => 'array', items => { '$ref' => '#/$defs/tag' } },
                externalDocs => { '$ref' => '#/$defs/externalDocs' },
            }) },
        '$defs' => {
            reference => { type => 'object', required => ['$ref'], additionalProperties => $false,
                           properties => { '$ref' => $string, summary => $string, description => $string } },
            info => $obj->(required => [qw(title version)], properties => {
                title => $string, summary => $string, description => $string, termsOfService => $string,
                contact => $obj->(properties => { name => $string, url => $string, email => $string }),
                license => $obj->(required => ['name'],
                                  properties => { name => $string, identifier => $string, url => $string },
                                  not => { required => [qw(identifier url)] }),
                version => $string }),
            server => $obj->(required => ['url'], properties => {
                url => $string, description => $string,
                variables => { type => 'object', additionalProperties => $obj->(
                    required => ['default'],
                    properties => { enum => { type => 'array', minItems => 1, items => $string },
                                    default => $string, description => $string }) } }),
            externalDocs => $obj->(required => ['url'], properties => { description => $string, url => $string }),
            tag => $obj->(required => ['name'], properties => {
                name => $string, description => $string,
                externalDocs => { '$ref' => '#/$defs/externalDocs' } }),
            securityRequirement => { type => 'object', additionalProperties => { type => 'array', items => $string } },
            paths => { type => 'object', additionalProperties => $false,
                       patternProperties => { '^/' => { '$ref' => '#/$defs/pathItem' }, %$ext } },
            pathItem => $obj->(properties => {
                '$ref' => $string, summary => $string, description => $string, %ops,
                servers => { type => 'array', items => { '$ref' => '#/$defs/server' } },
                parameters => { type => 'array', items => $ref_or->('parameter') } }),
            operation => $obj->(properties => {
                tags => { type => 'array', items => $string }, summary => $string, description => $string,
                externalDocs => { '$ref' => '#/$defs/externalDocs' }, operationId => $string,
                parameters => { type => 'array', items => $ref_or->('parameter') },
                requestBody => $ref_or->('requestBody'),
                responses => { '$ref' => '#/$defs/responses' },
                callbacks => { type => 'object' }, deprecated => $bool,
                security => { type => 'array', items => { '$ref' => '#/$defs/securityRequirement' } },
                servers => { type => 'array', items => { '$ref' => '#/$defs/server' } } }),
            responses => { type => 'object', minProperties => 1, additionalProperties => $false,
                           patternProperties => { '^(?:[1-5](?:\d\d|XX)|default)$' => $ref_or->('response'), %$ext } },
            response => $obj->(required => ['description'], properties => {
                description => $string,
                headers => { type => 'object', additionalProperties => $ref_or->('header') },
                content => { '$ref' => '#/$defs/content' },
                links => { type => 'object' } }),
            content => { type => 'object', additionalProperties => { '$ref' => '#/$defs/mediaType' } },
            mediaType => $obj->(properties => {
                schema => $schema_ref, example => {}, examples => { type => 'object' },
                encoding => { type => 'object' } }),
            requestBody => $obj->(required => ['content'], properties => {
                description => $string, content => { '$ref' => '#/$defs/content' }, required => $bool }),
            header => $obj->(
                oneOf => [{ required => ['schema'] }, { required => ['content'] }],
                properties => {
                    description => $string, required => $bool, deprecated => $bool,
                    style => { const => 'simple' }, explode => $bool,
                    schema => $schema_ref, content => { '$ref' => '#/$defs/content' },
                    example => {}, examples => { type => 'object' } }),
            parameter => $obj->(
                required => [qw(name in)],
                oneOf => [{ required => ['schema'] }, { required => ['content'] }],
                if => { properties => { in => { const => 'path' } } },
                then => { required => ['required'], properties => { required => { const => JSON::PP::true } } },
                properties => {
                    name => $string, in => { enum => [qw(query header path cookie)] },
                    description => $string, required => $bool, deprecated => $bool,
                    allowEmptyValue => $bool, style => $string, explode => $bool,
                    allowReserved => $bool, schema => $schema_ref,
                    content => { '$ref' => '#/$defs/content' },
                    example => {}, examples => { type => 'object' } }),
            securityScheme => $obj->(
                required => ['type'],
                if => { properties => { type => { const => 'http' } } },
                then => { required => ['scheme'] },
                properties => {
                    type => { enum => [qw(apiKey http mutualTLS oauth2 openIdConnect)] },
                    description => $string, name => $string, in => { enum => [qw(query header cookie)] },
                    scheme => $string, bearerFormat => $string, flows => { type => 'object' },
                    openIdConnectUrl => $string }),
            components => $obj->(properties => {
                schemas => $map_of->($schema_ref),
                responses => $map_of->($ref_or->('response')),
                parameters => $map_of->($ref_or->('parameter')),
                examples => $map_of->({ type => 'object' }),
                requestBodies => $map_of->($ref_or->('requestBody')),
                headers => $map_of->($ref_or->('header')),
                securitySchemes => $map_of->($ref_or->('securityScheme')),
                links => $map_of->({ type => 'object' }),
                callbacks => $map_of->({ type => 'object' }),
                pathItems => $map_of->($ref_or->('pathItem')) }),
            schema => { anyOf => [
                { type => 'boolean' },
                { type => 'object', additionalProperties => $false,
                  patternProperties => $ext, properties => \%schema_keywords } ] },
        },
    };
}

1;
