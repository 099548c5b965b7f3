/*
 * src/data/catalog.h: the standard datasets icsparse knows by name: their
 * source format, class names, local places to look first, and the
 * archives to download with their SHA-256.
 */
#ifndef ICS_DATA_CATALOG_H
#define ICS_DATA_CATALOG_H

typedef enum ics_source_format {
    ICS_SOURCE_IDX,      /* four IDX files (MNIST layout), gzip or raw */
    ICS_SOURCE_CIFAR10,  /* cifar-10-binary.tar.gz */
    ICS_SOURCE_CIFAR100, /* cifar-100-binary.tar.gz */
    ICS_SOURCE_FOLDER    /* train/ and val/ (or test/) with one subfolder per class */
} ics_source_format;

#define ICS_CATALOG_MAX_FILES 4

typedef struct ics_catalog_file {
    const char *name;   /* file name in the download directory */
    const char *url;
    const char *sha256; /* hex, or NULL when no digest is pinned (then --sha256 is required) */
} ics_catalog_file;

typedef struct ics_catalog_entry {
    const char *name;
    ics_source_format format;
    const char *summary;
    const char *local_dirs[3];  /* searched first, NULL-terminated */
    ics_catalog_file files[ICS_CATALOG_MAX_FILES];
    int file_count;
    const char *folder_root;    /* folder datasets: directory inside the archive */
} ics_catalog_entry;

/* The entry for a name ("fashion-mnist"), or NULL. */
const ics_catalog_entry *ics_catalog_find(const char *name);
/* All entries; *count set. */
const ics_catalog_entry *ics_catalog_entries(int *count);
/* Parses "idx", "cifar10", "cifar100", "folder"; -1 if unknown. */
int ics_source_format_parse(const char *text);
/* Class names for the IDX datasets (10 each). */
extern const char *const ics_fashion_mnist_classes[10];
extern const char *const ics_mnist_classes[10];

#endif
