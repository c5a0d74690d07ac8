# After a correct d_loss_by_d_model: output without end, and HTML and JavaScript meant to
# run in the instructor's browser.
from IPython.display import HTML, Javascript, display

display(HTML("<script>document.title = 'TAKEN OVER'</script><b>learner markup</b>"))
display(Javascript("document.title = 'TAKEN OVER BY JS'"))
for _ in range(20):
    print("x" * 2**20)
