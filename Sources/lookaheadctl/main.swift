import ArgumentParser

LookaheadCtl.main()
