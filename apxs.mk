# Compiler and linker flags for a module of the installed httpd, asked of apxs.
APXS        ?= apxs
APXS_CFLAGS := $(shell $(APXS) -q CFLAGS) $(shell $(APXS) -q EXTRA_CPPFLAGS 2>/dev/null)
APXS_INCS   := -I$(shell $(APXS) -q INCLUDEDIR) $(shell $(APXS) -q EXTRA_INCLUDES)
APR_CPPFLAGS := $(shell apr-1-config --cppflags)
APXS_LIBEXECDIR := $(shell $(APXS) -q LIBEXECDIR)
PG_INCLUDEDIR := $(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
