# src/apps: one thin main() per executable over a shared app framework.
noinst_LTLIBRARIES = libicsapp.la
libicsapp_la_SOURCES = src/apps/app.c src/apps/app.h
libicsapp_la_LIBADD = libicsparse.la

bin_PROGRAMS += src/apps/icsparse-train src/apps/icsparse-eval src/apps/icsparse-export \
	src/apps/icsparse-consolidate
src_apps_icsparse_train_SOURCES = src/apps/icsparse-train.c
src_apps_icsparse_train_LDADD = $(ICS_APP_LIBS)
src_apps_icsparse_eval_SOURCES = src/apps/icsparse-eval.c
src_apps_icsparse_eval_LDADD = $(ICS_APP_LIBS)
src_apps_icsparse_export_SOURCES = src/apps/icsparse-export.c
src_apps_icsparse_export_LDADD = $(ICS_APP_LIBS)
src_apps_icsparse_consolidate_SOURCES = src/apps/icsparse-consolidate.c
src_apps_icsparse_consolidate_LDADD = $(ICS_APP_LIBS)
