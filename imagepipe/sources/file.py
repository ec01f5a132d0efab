"""A local image file, named by path or ``file://`` URL."""

import os
import stat

from imagepipe import exception
from imagepipe.sources import base


class LocalFile(base.ImageSource):
    supports_range = True

    def __init__(self, ref, path):
        super().__init__(ref)
        try:
            st = os.stat(path)
        except OSError as e:
            raise exception.SourceError(f'{ref}: {e.strerror}') from None
        if not stat.S_ISREG(st.st_mode):
            raise exception.SourceError(f'{ref}: not a regular file')
        self.path = path
        self.size = st.st_size
        self.mode = stat.S_IMODE(st.st_mode)

    def read(self, offset=0, identity=None):
        try:
            f = open(self.path, 'rb')
        except OSError as e:
            raise exception.SourceError(f'{self.ref}: {e.strerror}') from None
        # The version of the file: a new file, or new bytes written into
        # this one, change one of these.
        st = os.fstat(f.fileno())
        now = {'size': st.st_size, 'mtime_ns': st.st_mtime_ns,
               'inode': st.st_ino}
        if now != identity:
            offset = 0
        f.seek(offset)
        return base.Stream(self.ref, f, offset, self.size, self.size - offset,
                           identity=now)
