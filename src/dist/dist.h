/*
 * src/dist: the only place that calls MPI (and, with CUDA, NCCL).
 *
 * The rest of icsparse sees a communicator as an opaque ics_dist and calls
 * these helpers. A process that never called ics_dist_init behaves as
 * rank 0 of 1, so the library and its tests also work without MPI.
 */
#ifndef ICS_DIST_DIST_H
#define ICS_DIST_DIST_H

#include <stddef.h>
#include <stdint.h>
#include <icsparse/status.h>

/* Starts MPI (MPI_THREAD_FUNNELED or better) and the logger's rank. */
ics_status ics_dist_init(int *argc, char ***argv, ics_error *err);
/* Finalizes MPI if this process initialized it. */
void ics_dist_finalize(void);
int ics_dist_initialized(void);
int ics_dist_rank(void);
int ics_dist_size(void);
/* Ranks of this job on this node (for dividing the cores); 1 without MPI. */
int ics_dist_local_size(void);
/* The rank a launcher announces in the environment before MPI_Init
 * (mpirun, srun): lets an executable print a usage error on rank 0 only
 * without starting MPI. 0 when not launched by one. */
int ics_dist_env_rank(void);
int ics_dist_env_size(void);

/* Ends every rank of the job: MPI_Abort when MPI is up, else exit. Only
 * src/apps calls this. */
void ics_dist_abort(int exit_code) __attribute__((noreturn));

ics_status ics_dist_barrier(ics_error *err);
ics_status ics_dist_bcast(void *buf, size_t bytes, int root, ics_error *err);
/* In-place sum over ranks. */
ics_status ics_dist_allreduce_sum_f32(float *buf, size_t count, ics_error *err);
ics_status ics_dist_allreduce_sum_f64(double *buf, size_t count, ics_error *err);
ics_status ics_dist_allreduce_sum_i64(int64_t *buf, size_t count, ics_error *err);
ics_status ics_dist_allreduce_max_f64(double *buf, size_t count, ics_error *err);
/* Every rank's status reduced: returns ICS_OK only when every rank
 * passed ICS_OK, so ranks can fail together instead of hanging. */
ics_status ics_dist_agree(ics_status local, ics_error *err);
/* 1 when the last ics_dist_agree ended in failure: every rank knows it
 * failed and no collective is pending, so the job may end without
 * MPI_Abort (0 after an agreement that succeeded). */
int ics_dist_failure_agreed(void);
/* The lowest rank that failed in that agreement (-1 if none): it alone
 * prints the error, so a failure every rank shares is printed once. */
int ics_dist_first_failed_rank(void);
/* The MPI communicator for parallel HDF5 (MPI_Comm, as an opaque pointer
 * to the communicator handle; NULL when MPI is not initialized). */
const void *ics_dist_mpi_comm_world(void);
/* The MPI library's version line (callable before MPI starts). */
void ics_dist_library_version(char *buf, size_t size);

#endif
