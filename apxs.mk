# Compiler and linker flags for a module of the installed httpd, asked of apxs.
# Quiet when apxs is not installed yet: `make deps` (run first by make run,
# make test and make bench) installs it, and the build runs in a new make.
APXS        ?= $(shell command -v apxs 2>/dev/null)
APR_CONFIG  := $(shell command -v apr-1-config 2>/dev/null)
ifneq ($(APXS),)
APXS_INCS   := -I$(shell $(APXS) -q INCLUDEDIR) $(shell $(APXS) -q EXTRA_INCLUDES)
APXS_LIBEXECDIR := $(shell $(APXS) -q LIBEXECDIR)
endif
ifneq ($(APR_CONFIG),)
APR_CPPFLAGS := $(shell $(APR_CONFIG) --cppflags)
endif
PG_INCLUDEDIR := $(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
