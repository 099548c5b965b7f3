# src/apps: one thin main() per executable over a shared app framework.
noinst_LTLIBRARIES = libicsapp.la
libicsapp_la_SOURCES = src/apps/app.c src/apps/app.h
libicsapp_la_LIBADD = libicsparse.la
