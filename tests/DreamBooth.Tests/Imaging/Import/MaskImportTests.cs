using System.IO.Compression;
using DreamBooth.Imaging.Import;
using DreamBooth.Tests.Infrastructure;
using DreamBooth.Training;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using static DreamBooth.Tests.Imaging.Import.ImportTestImages;

namespace DreamBooth.Tests.Imaging.Import;

/// <summary>Subject masks (name-masklabel.png) travel with their images through the importer: same crop, same size.</summary>
public class MaskImportTests
{
    static readonly ImportOptions Tiny = new() { Resolution = 64 };

    /// <summary>A mask whose subject is the columns from <paramref name="edge"/> on.</summary>
    static Image<L8> RightOf(int width, int height, int edge)
    {
        var m = new Image<L8>(width, height);
        for (int y = 0; y < height; y++) for (int x = edge; x < width; x++) m[x, y] = new L8(255);
        return m;
    }

    [Theory]
    [InlineData(CropMode.Center)]
    [InlineData(CropMode.Smart)]
    public void AMaskIsCroppedAndResizedExactlyLikeItsImage(CropMode crop)
    {
        using var src = TestPaths.NewTempDir();
        using var dst = TestPaths.NewTempDir();
        using (var img = Detailed(192, 128, 5)) SavePng(img, src.File("zwx (1).png"));
        using (var m = RightOf(192, 128, 120)) m.SaveAsPng(src.File("zwx (1)" + MaskFiles.Suffix));
        using (var img = Detailed(100, 100, 6)) SavePng(img, src.File("zwx (2).png"));

        var report = new InstanceImageImporter(Tiny with { CropMode = crop }).Import(src.Path, dst.Path);

        Assert.Equal(2, report.Summary.Imported);
        Assert.Equal(2, report.Images.Count); // the mask is not an image of its own
        var withMask = Assert.Single(report.Images, i => i.MaskPath is not null);
        Assert.Equal(Path.Combine(dst.Path, "zwx (1)" + MaskFiles.Suffix), withMask.MaskPath);
        Assert.Null(report.Images.Single(i => i != withMask).MaskPath);
        Assert.Contains("with its mask", withMask.ToText());
        Assert.DoesNotContain("with its mask", report.Images.Single(i => i != withMask).ToText());
        using var mask = Image.Load<L8>(withMask.MaskPath!);
        Assert.Equal(64, mask.Width);
        Assert.Equal(64, mask.Height);
        // the subject edge (source column 120) lands where the image's crop box maps it
        var box = withMask.Crop!;
        double edgeOut = (120 - box.X) * 64.0 / box.Size;
        for (int x = 0; x < 64; x++)
        {
            if (x + 0.5 < edgeOut - 1.5) Assert.Equal(0, mask[x, 32].PackedValue);
            if (x + 0.5 > edgeOut + 1.5) Assert.Equal(255, mask[x, 32].PackedValue);
        }
        // a session lists the image once, never its mask
        Assert.Equal(2, Directory.GetFiles(dst.Path, "*.png").Count(f => !MaskFiles.IsMask(f)));
    }

    [Fact]
    public void SmartCropKeepsTheMaskedSubjectWhereTheEntropyCropWouldCutItOff()
    {
        using var src = TestPaths.NewTempDir();
        using var dst = TestPaths.NewTempDir();
        // busy texture on the left, flat grey on the right with a small plain subject near the right edge
        using (var img = Detailed(192, 128, 9))
        {
            for (int y = 0; y < 128; y++)
                for (int x = 96; x < 192; x++)
                    img[x, y] = x is >= 150 and < 180 && y is >= 50 and < 80 ? new Rgb24(200, 40, 40) : new Rgb24(128, 128, 128);
            SavePng(img, src.File("zwx.png"));
            SavePng(img, src.File("plain.png"));
        }
        using (var m = new Image<L8>(192, 128))
        {
            for (int y = 50; y < 80; y++) for (int x = 150; x < 180; x++) m[x, y] = new L8(255);
            m.SaveAsPng(src.File("zwx" + MaskFiles.Suffix));
        }

        var report = new InstanceImageImporter(Tiny).Import(src.Path, dst.Path);

        var plain = Assert.Single(report.Images, i => i.SourcePath.EndsWith("plain.png", StringComparison.Ordinal)).Crop!;
        var masked = Assert.Single(report.Images, i => i.SourcePath.EndsWith("zwx.png", StringComparison.Ordinal)).Crop!;
        Assert.True(plain.X + plain.Size < 180, $"the entropy crop keeps the busy left ({plain}), so it cuts the subject");
        Assert.True(masked.X <= 150 && masked.X + masked.Size >= 180, $"the mask's crop {masked} keeps the whole subject");
        using var mask = Image.Load<L8>(Assert.Single(report.Images, i => i.MaskPath is not null).MaskPath!);
        double kept = 0;
        for (int y = 0; y < 64; y++) for (int x = 0; x < 64; x++) kept += mask[x, y].PackedValue / 255.0;
        Assert.InRange(kept * (masked.Size / 64.0) * (masked.Size / 64.0), 0.9 * 900, 1.1 * 900);
    }

    [Fact]
    public void FromMaskPicksTheWindowWithTheMostSubjectCentredOnIt()
    {
        // empty mask: the centre crop
        using (var empty = new Image<L8>(200, 100)) Assert.Equal(SmartCrop.Center(200, 100), SmartCrop.FromMask(empty));
        // square: the whole picture
        using (var sq = new Image<L8>(80, 80)) Assert.Equal(new CropBox(0, 0, 80), SmartCrop.FromMask(sq));
        // a small subject with room on both sides: the window is centred on it
        using (var m = new Image<L8>(300, 100))
        {
            for (int y = 40; y < 60; y++) for (int x = 190; x < 210; x++) m[x, y] = new L8(255);
            var box = SmartCrop.FromMask(m);
            Assert.Equal(100, box.Size);
            Assert.InRange(box.X + 50, 199, 201);
        }
        // portrait, subject at the bottom edge: the lowest window
        using (var m = new Image<L8>(100, 250))
        {
            for (int y = 230; y < 250; y++) for (int x = 0; x < 100; x++) m[x, y] = new L8(255);
            Assert.Equal(new CropBox(0, 150, 100), SmartCrop.FromMask(m));
        }
        // soft masks count by their grey level: a faint blob loses to a solid one of the same size
        using (var m = new Image<L8>(300, 100))
        {
            for (int y = 0; y < 100; y++) for (int x = 0; x < 40; x++) m[x, y] = new L8(60);
            for (int y = 0; y < 100; y++) for (int x = 260; x < 300; x++) m[x, y] = new L8(255);
            Assert.Equal(new CropBox(200, 0, 100), SmartCrop.FromMask(m));
        }
    }

    [Fact]
    public void AMaskOfTheWrongSizeIsReportedAndLeftOut_AndAnOrphanMaskIsNoted()
    {
        using var src = TestPaths.NewTempDir();
        using var dst = TestPaths.NewTempDir();
        using (var img = Detailed(128, 128, 7)) SavePng(img, src.File("a.png"));
        using (var m = RightOf(64, 64, 10)) m.SaveAsPng(src.File("a" + MaskFiles.Suffix));
        using (var m = RightOf(64, 64, 10)) m.SaveAsPng(src.File("ghost" + MaskFiles.Suffix));
        File.WriteAllText(src.File("b" + MaskFiles.Suffix), "not a png");
        using (var img = Detailed(128, 128, 8)) SavePng(img, src.File("b.png"));

        var report = new InstanceImageImporter(Tiny).Import(src.Path, dst.Path);

        Assert.Equal(2, report.Summary.Imported);
        var a = Assert.Single(report.Images, i => i.SourcePath.EndsWith("a.png", StringComparison.Ordinal));
        Assert.Null(a.MaskPath);
        var issue = Assert.Single(a.Issues, i => i.Kind == IssueKind.Mask);
        Assert.Contains("64x64 but the image is 128x128", issue.Message);
        var b = Assert.Single(report.Images, i => i.SourcePath.EndsWith("b.png", StringComparison.Ordinal));
        Assert.Contains("could not be read", Assert.Single(b.Issues, i => i.Kind == IssueKind.Mask).Message);
        var ghost = Assert.Single(report.Images, i => i.SourcePath.EndsWith("ghost" + MaskFiles.Suffix, StringComparison.Ordinal));
        Assert.Equal(IssueKind.OrphanMask, Assert.Single(ghost.Issues).Kind);
        Assert.Equal(ImportStatus.Skipped, ghost.Status);
        Assert.Empty(Directory.GetFiles(dst.Path, "*" + MaskFiles.Suffix));
    }

    [Fact]
    public void MasksInAZipAndBesideListedFilesAreImported()
    {
        using var tmp = TestPaths.NewTempDir();
        using var dst = TestPaths.NewTempDir();
        var zipPath = tmp.File("photos.zip");
        using (var zip = ZipFile.Open(zipPath, ZipArchiveMode.Create))
        {
            void Add(string name, byte[] bytes) { using var s = zip.CreateEntry(name).Open(); s.Write(bytes); }
            using (var img = Detailed(96, 96, 9)) Add("set/me.png", PngBytes(img));
            using (var m = RightOf(96, 96, 48)) Add("set/me" + MaskFiles.Suffix, PngBytes(m));
        }
        var fromZip = new InstanceImageImporter(Tiny).Import(zipPath, dst.Path);
        Assert.NotNull(Assert.Single(fromZip.Images).MaskPath);

        // a listed image picks up the mask beside it on disk
        using var src = TestPaths.NewTempDir();
        using var dst2 = TestPaths.NewTempDir();
        using (var img = Detailed(96, 96, 10)) SavePng(img, src.File("you.png"));
        using (var m = RightOf(96, 96, 48)) m.SaveAsPng(src.File("you" + MaskFiles.Suffix));
        var listed = new InstanceImageImporter(Tiny).Import([src.File("you.png")], dst2.Path);
        Assert.True(File.Exists(Assert.Single(listed.Images).MaskPath));
    }
}
