/*
 * Shared between the two .pth readers (pth_reader.c: zip format;
 * pth_legacy.c: the pre-1.6 format): the loaded file, and the state of one
 * load with the pickle hooks that rebuild tensors from storages.
 */
#ifndef ICS_IO_PTH_INTERNAL_H
#define ICS_IO_PTH_INTERNAL_H

#include "io/pickle_reader.h"
#include "io/pth_reader.h"
#include "io/zip_reader.h"

struct ics_pth {
    ics_pv_arena *arena;
    ics_pv *root;
    char archive_name[256];
};

/* A storage's bytes, by key (data NULL: named but not read yet). */
typedef struct ics_pth_storage {
    char *key;
    uint8_t *data;
    size_t size;
    ics_pv_dtype dtype;
} ics_pth_storage;

/* State of one load: where storages come from (the archive, or for the
 * legacy format the table filled beforehand), and the budget of tensor
 * bytes that stops a file from making many large views of one storage
 * (each view becomes a copy). */
typedef struct ics_pth_loader {
    const ics_zip_reader *zip; /* NULL: only the table */
    const char *label;
    const char *prefix; /* "archive/" */
    ics_pth_storage *storages;
    size_t storage_count, storage_cap;
    size_t tensor_budget;
    int scanning; /* record storages, rebuild nothing (legacy pass 1) */
} ics_pth_loader;

/* Fills hooks for data.pkl: persistent ids become storages, torch's
 * _rebuild_* calls become tensors. Sets the tensor budget from the size. */
void ics_pth_loader_hooks(ics_pth_loader *ld, size_t file_size, ics_pickle_hooks *hooks);
/* Adds key (copied) to the storage table unless present. */
ics_status ics_pth_loader_note(ics_pth_loader *ld, const char *key, ics_pv_dtype dtype,
                               ics_error *err);
/* Frees the storage table. */
void ics_pth_loader_release(ics_pth_loader *ld);

/* Reads a legacy (pre-1.6) torch.save stream into pth. */
ics_status ics_pth_load_legacy(ics_pth *pth, const uint8_t *data, size_t size, const char *label,
                               ics_error *err);

#endif
