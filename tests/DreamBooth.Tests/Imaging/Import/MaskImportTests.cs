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
