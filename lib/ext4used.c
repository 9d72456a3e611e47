/* ext4used.c - runs of used blocks from the block bitmaps (ext4used.h). */
#include "ext4used.h"

#include <errno.h>

#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

/* One run of set bits from `from`: [*start, *end). ENOENT when none is left. */
static errcode_t next_run(ext2fs_block_bitmap map, blk64_t from, blk64_t last, blk64_t *start,
                          blk64_t *end)
{
    errcode_t e = ext2fs_find_first_set_block_bitmap2(map, from, last, start);
    if (e)
        return e;
    blk64_t zero;
    e = *start < last ? ext2fs_find_first_zero_block_bitmap2(map, *start + 1, last, &zero) : ENOENT;
    if (e == ENOENT) {
        *end = last + 1;
        return 0;
    }
    if (e)
        return e;
    *end = zero;
    return 0;
}

static si_result walk_bitmap(ext2_filsys fs, const char *path, si_sparse_range_fn fn, void *ctx,
                             uint64_t *used, si_err *err)
{
    uint64_t bs = fs->blocksize;
    blk64_t first = fs->super->s_first_data_block;
    blk64_t last = ext2fs_blocks_count(fs->super) - 1;
    blk64_t at = first, start, end;
    while (at <= last) {
        errcode_t e = next_run(fs->block_map, at, last, &start, &end);
        if (e == ENOENT)
            break;
        if (e)
            return si_err_set(err, SI_ERR_IO, "%s: block bitmap: %s", path, error_message(e));
        if (start == first) /* the boot block(s) before the bitmaps' range go with the superblock */
            start = 0;
        if (fn(start * bs, (end - start) * bs, ctx) != 0)
            return SI_ERR_IO;
        *used += (end - start) * bs;
        at = end;
    }
    return SI_OK;
}

si_result si_ext4_used_walk(const char *path, si_sparse_range_fn fn, void *ctx,
                            si_ext4_used_stats *stats, si_err *err)
{
    ext2_filsys fs = NULL;
    errcode_t e = ext2fs_open(path, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs);
    if (e)
        return si_err_set(err, e == EXT2_ET_BAD_MAGIC || e == EXT2_ET_SHORT_READ ? SI_ERR_PARTITION
                                                                                  : SI_ERR_IO,
                          "%s: no ext2/3/4 filesystem (%s)", path, error_message(e));
    e = ext2fs_read_block_bitmap(fs);
    if (e) {
        ext2fs_close_free(&fs);
        return si_err_set(err, SI_ERR_IO, "%s: reading the block bitmaps: %s", path,
                          error_message(e));
    }
    uint64_t used = 0;
    si_result rc = walk_bitmap(fs, path, fn, ctx, &used, err);
    if (stats) {
        stats->block_size = fs->blocksize;
        stats->fs_bytes = ext2fs_blocks_count(fs->super) * (uint64_t)fs->blocksize;
        stats->used_bytes = used;
    }
    ext2fs_close_free(&fs);
    return rc;
}
