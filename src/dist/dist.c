/* MPI wrappers: see dist.h. */
#include "ics_build_config.h"
#include "dist/dist.h"
#include "core/log.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int we_initialized;
static int world_rank;
static int world_size = 1;
static MPI_Comm world_comm = MPI_COMM_NULL;
static int local_size = 1;

static ics_status mpi_check(int rc, const char *what, ics_error *err)
{
    if (rc == MPI_SUCCESS) return ICS_OK;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    return ICS_FAIL(err, ICS_ERR_MPI, "%s failed on rank %d: %s", what, world_rank, text);
}

ics_status ics_dist_init(int *argc, char ***argv, ics_error *err)
{
    int already = 0;
    MPI_Initialized(&already);
    if (!already) {
        int provided = 0;
        ics_status st = mpi_check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided),
                                  "MPI_Init_thread", err);
        if (st) return st;
        we_initialized = 1;
    }
    world_comm = MPI_COMM_WORLD;
    MPI_Comm_set_errhandler(world_comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(world_comm, &world_rank);
    MPI_Comm_size(world_comm, &world_size);
    MPI_Comm node;
    if (MPI_Comm_split_type(world_comm, MPI_COMM_TYPE_SHARED, world_rank, MPI_INFO_NULL, &node) ==
        MPI_SUCCESS) {
        MPI_Comm_size(node, &local_size);
        MPI_Comm_free(&node);
    }
    ics_log_set_rank(world_rank);
    return ICS_OK;
}

void ics_dist_finalize(void)
{
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (we_initialized && !finalized) MPI_Finalize();
    we_initialized = 0;
    world_comm = MPI_COMM_NULL;
}

int ics_dist_initialized(void) { return world_comm != MPI_COMM_NULL; }
int ics_dist_rank(void) { return world_comm != MPI_COMM_NULL ? world_rank : 0; }
int ics_dist_size(void) { return world_comm != MPI_COMM_NULL ? world_size : 1; }
int ics_dist_local_size(void) { return world_comm != MPI_COMM_NULL ? local_size : 1; }

static int env_int(const char *const *names, int fallback)
{
    for (int i = 0; names[i]; i++) {
        const char *v = getenv(names[i]);
        if (v && *v) return atoi(v);
    }
    return fallback;
}

int ics_dist_env_rank(void)
{
    static const char *const names[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK",
                                        "SLURM_PROCID", NULL};
    return env_int(names, 0);
}

int ics_dist_env_size(void)
{
    static const char *const names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS", NULL};
    return env_int(names, 1);
}

void ics_dist_abort(int exit_code)
{
    if (world_comm != MPI_COMM_NULL && world_size > 1) MPI_Abort(world_comm, exit_code);
    if (world_comm != MPI_COMM_NULL) ics_dist_finalize();
    exit(exit_code);
}

ics_status ics_dist_barrier(ics_error *err)
{
    if (world_comm == MPI_COMM_NULL) return ICS_OK;
    return mpi_check(MPI_Barrier(world_comm), "MPI_Barrier", err);
}

ics_status ics_dist_bcast(void *buf, size_t bytes, int root, ics_error *err)
{
    if (world_comm == MPI_COMM_NULL || world_size == 1) return ICS_OK;
    /* MPI counts are int: send in chunks of at most 1 GiB. */
    char *p = buf;
    while (bytes > 0) {
        int chunk = bytes > (1u << 30) ? (1 << 30) : (int)bytes;
        ics_status st = mpi_check(MPI_Bcast(p, chunk, MPI_BYTE, root, world_comm), "MPI_Bcast", err);
        if (st) return st;
        p += chunk;
        bytes -= (size_t)chunk;
    }
    return ICS_OK;
}

static ics_status allreduce(void *buf, size_t count, MPI_Datatype type, size_t elem_bytes, MPI_Op op,
                            ics_error *err)
{
    if (world_comm == MPI_COMM_NULL || world_size == 1) return ICS_OK;
    char *p = buf;
    while (count > 0) {
        int chunk = count > (1u << 28) ? (1 << 28) : (int)count;
        ics_status st = mpi_check(MPI_Allreduce(MPI_IN_PLACE, p, chunk, type, op, world_comm),
                                  "MPI_Allreduce", err);
        if (st) return st;
        p += (size_t)chunk * elem_bytes;
        count -= (size_t)chunk;
    }
    return ICS_OK;
}

ics_status ics_dist_allreduce_sum_f32(float *buf, size_t count, ics_error *err)
{
    return allreduce(buf, count, MPI_FLOAT, sizeof(float), MPI_SUM, err);
}

ics_status ics_dist_allreduce_sum_f64(double *buf, size_t count, ics_error *err)
{
    return allreduce(buf, count, MPI_DOUBLE, sizeof(double), MPI_SUM, err);
}

ics_status ics_dist_allreduce_sum_i64(int64_t *buf, size_t count, ics_error *err)
{
    return allreduce(buf, count, MPI_INT64_T, sizeof(int64_t), MPI_SUM, err);
}

ics_status ics_dist_allreduce_max_f64(double *buf, size_t count, ics_error *err)
{
    return allreduce(buf, count, MPI_DOUBLE, sizeof(double), MPI_MAX, err);
}

static int failure_agreed, first_failed_rank = -1;

int ics_dist_failure_agreed(void) { return failure_agreed; }
int ics_dist_first_failed_rank(void) { return first_failed_rank; }

ics_status ics_dist_agree(ics_status local, ics_error *err)
{
    failure_agreed = 0;
    if (world_comm == MPI_COMM_NULL || world_size == 1) return local;
    /* The lowest failing rank (world_size when none failed). */
    int mine = local != ICS_OK ? world_rank : world_size, first = world_size;
    ics_status st = mpi_check(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, world_comm),
                              "MPI_Allreduce", err);
    if (st) return st;
    int any_failed = first < world_size;
    failure_agreed = any_failed;
    first_failed_rank = any_failed ? first : -1;
    if (local != ICS_OK) return local;
    if (any_failed) return ICS_FAIL(err, ICS_ERR_RUNTIME, "another rank failed");
    return ICS_OK;
}

const void *ics_dist_mpi_comm_world(void)
{
    return world_comm != MPI_COMM_NULL ? (const void *)&world_comm : NULL;
}

void ics_dist_library_version(char *buf, size_t size)
{
    char text[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(text, &len);
    /* Keep the first line ("Open MPI v4.1.4, package: ..."), up to the comma. */
    char *cut = strpbrk(text, ",\n");
    if (cut) *cut = '\0';
    snprintf(buf, size, "%s", text);
}
