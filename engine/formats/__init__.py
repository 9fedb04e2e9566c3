"""ivos.formats: masks in and out of files and payloads. One codec for everything that
crosses a wire or a file, shared by the server, the client and the CLIs.

* ``rle``: the RLE codec (COCO uncompressed and compressed RLE), and mask boxes.
* ``codec``: mask payloads of the HTTP API (COCO RLE / PNG), for server and client.
* ``brush_rle``: Label Studio's brush RLE (``brushlabels`` results).
* ``mask_files``: PNG masks, RLE JSON, overlay videos, cut-outs and animated stickers.
* ``annotations``: COCO JSON, DAVIS palette PNGs, polygons, WebM stickers with alpha.
"""
