# src/log: training metric loggers behind one table (logger.h): metrics.jsonl
# and TensorBoard event files (TFRecord framing, CRC-32C, hand-encoded
# Event protobuf), plus a checking reader for the event files.
libicsparse_la_SOURCES += src/log/logger.c src/log/log_jsonl.c src/log/log_tensorboard.c \
	src/log/crc32c.c src/log/tfrecord.c src/log/tb_event.c src/log/tb_reader.c
noinst_HEADERS += src/log/logger.h src/log/crc32c.h src/log/tfrecord.h src/log/tb_event.h src/log/tb_reader.h
