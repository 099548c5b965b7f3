# src/train: optimizers, learning-rate schedules, weight EMA (and, later,
# losses, AMP and the trainer loop). The optimizer/schedule/EMA section of
# the configuration schema lives in src/config/schema_optim.c, owned here.
libicsparse_la_SOURCES += src/train/optim.c src/train/optim_sgd.c src/train/optim_adam.c \
	src/train/optim_clip.c src/train/lr_schedule.c src/train/ema.c src/train/optim_config.c \
	src/config/schema_optim.c
noinst_HEADERS += src/train/optim.h src/train/optim_internal.h src/train/lr_schedule.h src/train/ema.h \
	src/train/optim_config.h
