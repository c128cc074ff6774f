#ifndef CONCLAVE_COPUS_SHIM_H
#define CONCLAVE_COPUS_SHIM_H
#include <opus.h>

/* opus_encoder_ctl / opus_decoder_ctl are variadic and driven by macros, which
 * Swift cannot import. Each ctl the project uses gets a typed wrapper here. */

static inline int conclave_opus_set_bitrate(OpusEncoder *st, opus_int32 bps) {
    return opus_encoder_ctl(st, OPUS_SET_BITRATE(bps));
}
static inline int conclave_opus_get_bitrate(OpusEncoder *st, opus_int32 *bps) {
    return opus_encoder_ctl(st, OPUS_GET_BITRATE(bps));
}
static inline int conclave_opus_set_inband_fec(OpusEncoder *st, opus_int32 on) {
    return opus_encoder_ctl(st, OPUS_SET_INBAND_FEC(on));
}
static inline int conclave_opus_get_inband_fec(OpusEncoder *st, opus_int32 *on) {
    return opus_encoder_ctl(st, OPUS_GET_INBAND_FEC(on));
}
static inline int conclave_opus_set_packet_loss_perc(OpusEncoder *st, opus_int32 pct) {
    return opus_encoder_ctl(st, OPUS_SET_PACKET_LOSS_PERC(pct));
}
static inline int conclave_opus_set_dtx(OpusEncoder *st, opus_int32 on) {
    return opus_encoder_ctl(st, OPUS_SET_DTX(on));
}
static inline int conclave_opus_get_dtx(OpusEncoder *st, opus_int32 *on) {
    return opus_encoder_ctl(st, OPUS_GET_DTX(on));
}
static inline int conclave_opus_set_complexity(OpusEncoder *st, opus_int32 c) {
    return opus_encoder_ctl(st, OPUS_SET_COMPLEXITY(c));
}
static inline int conclave_opus_get_lookahead(OpusEncoder *st, opus_int32 *samples) {
    return opus_encoder_ctl(st, OPUS_GET_LOOKAHEAD(samples));
}
static inline int conclave_opus_encoder_reset(OpusEncoder *st) {
    return opus_encoder_ctl(st, OPUS_RESET_STATE);
}
static inline int conclave_opus_decoder_reset(OpusDecoder *st) {
    return opus_decoder_ctl(st, OPUS_RESET_STATE);
}

/* Added for ConclaveMedia: read-back getters and decoder queries. */
static inline int conclave_opus_get_packet_loss_perc(OpusEncoder *st, opus_int32 *pct) {
    return opus_encoder_ctl(st, OPUS_GET_PACKET_LOSS_PERC(pct));
}
static inline int conclave_opus_get_complexity(OpusEncoder *st, opus_int32 *c) {
    return opus_encoder_ctl(st, OPUS_GET_COMPLEXITY(c));
}
static inline int conclave_opus_get_application(OpusEncoder *st, opus_int32 *app) {
    return opus_encoder_ctl(st, OPUS_GET_APPLICATION(app));
}
static inline int conclave_opus_encoder_get_sample_rate(OpusEncoder *st, opus_int32 *hz) {
    return opus_encoder_ctl(st, OPUS_GET_SAMPLE_RATE(hz));
}
static inline int conclave_opus_get_in_dtx(OpusEncoder *st, opus_int32 *flag) {
    return opus_encoder_ctl(st, OPUS_GET_IN_DTX(flag));
}
static inline int conclave_opus_decoder_get_sample_rate(OpusDecoder *st, opus_int32 *hz) {
    return opus_decoder_ctl(st, OPUS_GET_SAMPLE_RATE(hz));
}
static inline int conclave_opus_decoder_get_last_packet_duration(OpusDecoder *st, opus_int32 *samples) {
    return opus_decoder_ctl(st, OPUS_GET_LAST_PACKET_DURATION(samples));
}
#endif
